//! Stand-ins for ansible-runner and its Python module, and the requests the tests send.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::AnsibleRunner;
use crate::config::AnsibleRunnerConfig;
use crate::executor::RunRequest;
use crate::model::{Action, AlertStatus, DesiredState, Reason};

/// The extravars file as data, after checking that every string in it is tagged `!unsafe`.
pub(super) fn read_unsafe_yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text.replace("!unsafe \"", "\"")).unwrap();
    let strings = |v: &serde_json::Value| -> usize {
        fn count(v: &serde_json::Value) -> usize {
            match v {
                serde_json::Value::String(_) => 1,
                serde_json::Value::Array(a) => a.iter().map(count).sum(),
                serde_json::Value::Object(o) => o.values().map(count).sum(),
                _ => 0,
            }
        }
        count(v)
    };
    assert_eq!(text.matches("!unsafe \"").count(), strings(&json), "{text}");
    json
}

pub(super) fn cfg(dir: &Path, binary: PathBuf) -> AnsibleRunnerConfig {
    AnsibleRunnerConfig {
        binary,
        playbook: "autoheal.haproxy.remediate".into(),
        inventory: dir.join("inventory.ini"),
        limit: Some("haproxy".into()),
        fleet_limits: BTreeMap::from([("edge".to_owned(), "edge_lbs".to_owned())]),
        work_dir: dir.join("runs"),
        timeout_secs: 60,
        env: BTreeMap::from([("AUTOHEAL_TEST_ENV".to_owned(), "passed".to_owned())]),
        keep_runs: 2,
        resident: false,
        standby: false,
        python: None,
    }
}

pub(super) fn request() -> RunRequest {
    RunRequest {
        run_id: 7,
        fleet: "edge".into(),
        actions: vec![Action {
            server: Some("s1".into()),
            address: None,
            backend: Some("be".into()),
            state: DesiredState::Drain,
            weight: None,
            reason: Reason {
                alert: "Cpu".into(),
                fingerprint: "ab".into(),
                status: AlertStatus::Firing,
            },
        }],
    }
}

/// A stand-in ansible-runner (a shell script written by the test) that records its argv,
/// its environment and the extravars it finds, and writes the status file ansible-runner
/// writes. The real one runs in tests/relay/.
pub(super) fn fake_runner(dir: &Path, exit: i32, status: &str) -> PathBuf {
    let path = dir.join("fake-runner.sh");
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$2/argv\"\necho \"$AUTOHEAL_TEST_ENV\" > \"$2/envseen\"\n\
         mkdir -p \"$2/artifacts/autoheal\"\nprintf '{status}' > \"$2/artifacts/autoheal/status\"\n\
         echo 'boom on stderr' >&2\nexit {exit}\n"
    );
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A resident-mode executor on the real worker source and the system python3, with a
/// stand-in `ansible_runner` module (on PYTHONPATH) that records what `run()` was given.
/// The real ansible_runner runs in tests/relay/.
pub(super) fn resident_with_stand_in_module(dir: &Path) -> AnsibleRunner {
    let module_dir = dir.join("stand-in");
    std::fs::create_dir_all(&module_dir).unwrap();
    std::fs::write(
        module_dir.join("ansible_runner.py"),
        "import json, os, sys\n\
         class Result:\n    def __init__(self, status, rc):\n        self.status, self.rc = status, rc\n\
         def run(**kwargs):\n\
         \x20   kwargs['pid'] = os.getpid()\n\
         \x20   with open(os.path.join(kwargs['private_data_dir'], 'kwargs.json'), 'w') as f:\n\
         \x20       json.dump(kwargs, f)\n\
         \x20   print('chatter on stdout')\n\
         \x20   os.system('echo chatter from a child')\n\
         \x20   print('boom on stderr', file=sys.stderr)\n\
         \x20   if kwargs['playbook'] == 'raise':\n        raise RuntimeError('no such playbook')\n\
         \x20   return Result('failed', 2) if kwargs['playbook'] == 'fail' else Result('successful', 0)\n\
         # The warm standby: reads the worker's hand-off from the FIFO like relay_handoff does,\n\
         # records it in STANDBY_LOG and in its artifacts.\n\
         import select, threading\n\
         def run_async(**kwargs):\n\
         \x20   result = Result('running', None)\n\
         \x20   def standby():\n\
         \x20       with open(os.path.join(kwargs['private_data_dir'], 'env', 'extravars')) as f:\n\
         \x20           channel = json.load(f)['autoheal_standby_channel']\n\
         \x20       fd = os.open(channel, os.O_RDONLY | os.O_NONBLOCK)\n\
         \x20       poller = select.poll()\n\
         \x20       poller.register(fd, select.POLLIN)\n\
         \x20       data = b''\n\
         \x20       while poller.poll(30000):\n\
         \x20           chunk = os.read(fd, 65536)\n\
         \x20           if not chunk:\n\
         \x20               break\n\
         \x20           data += chunk\n\
         \x20       message = json.loads(data)\n\
         \x20       seen = {'message': message, 'playbook': kwargs['playbook'], 'limit': kwargs['limit']}\n\
         \x20       with open(os.environ['STANDBY_LOG'], 'a') as log:\n\
         \x20           log.write(json.dumps(seen) + '\\n')\n\
         \x20       artifacts = os.path.join(kwargs['private_data_dir'], 'artifacts', kwargs['ident'])\n\
         \x20       os.makedirs(artifacts)\n\
         \x20       with open(os.path.join(artifacts, 'handed.json'), 'w') as f:\n\
         \x20           json.dump(seen, f)\n\
         \x20       result.status, result.rc = ('canceled', 1) if 'cancel' in message else ('successful', 0)\n\
         \x20   thread = threading.Thread(target=standby)\n\
         \x20   thread.start()\n\
         \x20   return thread, result\n",
    )
    .unwrap();
    let mut c = cfg(dir, "ansible-runner".into());
    c.resident = true;
    c.python = Some("python3".into());
    c.env.insert(
        "PYTHONPATH".into(),
        module_dir.to_string_lossy().into_owned(),
    );
    c.env.insert(
        "STANDBY_LOG".into(),
        dir.join("standby.log").to_string_lossy().into_owned(),
    );
    AnsibleRunner::new(c)
}

pub(super) fn newest_run_dir(dir: &Path) -> PathBuf {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("run-"))
        .collect();
    runs.sort();
    runs.pop().unwrap()
}

pub(super) fn kwargs_of(run_dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("kwargs.json")).unwrap()).unwrap()
}

/// A stand-in interpreter (a shell script; it ignores `-u -c SOURCE`) that counts its
/// starts, says it is ready, reads one request and then does `after_request`.
pub(super) fn resident_with_stand_in_python(dir: &Path, after_request: &str) -> AnsibleRunner {
    let path = dir.join("stand-in-python");
    let starts = dir.join("starts");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho started >> '{}'\necho '{{\"ready\": true}}'\nread request\n{after_request}\n",
            starts.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut c = cfg(dir, "ansible-runner".into());
    c.resident = true;
    c.python = Some(path);
    AnsibleRunner::new(c)
}

/// Waits (up to 10 s) until the stand-in interpreter has been started `n` times.
pub(super) async fn wait_for_starts(dir: &Path, n: usize) -> usize {
    let count = || {
        std::fs::read_to_string(dir.join("starts"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    for _ in 0..100 {
        if count() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    count()
}
