//! A real HAProxy on loopback for the module's end-to-end tests.
//!
//! Each lab has its own temp dir: `etc/haproxy.cfg` (nothing else lives in `etc/`, so tests can
//! check that no temp file is left behind), `run/` for the sockets, `args/` for args files. Every
//! server has its own tiny HTTP upstream on a free port; HAProxy is killed on drop, even when a
//! test panics.

#![allow(dead_code)] // each test binary uses a different part of the lab

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Starts an HTTP upstream that answers 200 to everything; returns its port.
pub fn upstream() -> u16 {
    switchable_upstream(Arc::new(AtomicBool::new(true)))
}

/// Starts an HTTP upstream that answers 200 while `healthy` holds and 500 otherwise.
pub fn switchable_upstream(healthy: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an upstream");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let healthy = Arc::clone(&healthy);
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut request = [0u8; 2048];
                if matches!(stream.read(&mut request), Ok(n) if n > 0) {
                    let answer: &[u8] = if healthy.load(Ordering::SeqCst) {
                        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    } else {
                        b"HTTP/1.0 500 Oops\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno"
                    };
                    let _ = stream.write_all(answer);
                }
            });
        }
    });
    port
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One server as `show servers state` reports it, parsed here independently of the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub op_state: u32,
    pub admin_state: u32,
    pub weight: u32,
}

impl Live {
    pub fn maint(&self) -> bool {
        self.admin_state & 0x01 != 0
    }
    pub fn drained(&self) -> bool {
        !self.maint() && (self.admin_state & 0x08 != 0 || self.weight == 0)
    }
    pub fn ready_with(&self, weight: u32) -> bool {
        self.admin_state & 0x09 == 0 && self.weight == weight
    }
}

/// A lab: config, sockets, upstreams and (once started) HAProxy.
pub struct Lab {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub cfg: PathBuf,
    pub admin: PathBuf,
    pub ports: BTreeMap<String, u16>,
    child: Option<Child>,
    args_seq: AtomicUsize,
}

/// `(name, extra server options)` for each server of backend `app`.
pub type ServerSpec<'a> = (&'a str, &'a str);

impl Lab {
    /// Writes a config with backend `app` holding `servers`, each with `check` and its own
    /// upstream. `backend_extra` goes right under the backend header. Not started yet.
    pub fn new(servers: &[ServerSpec<'_>], backend_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        for sub in ["etc", "run", "args"] {
            fs::create_dir(root.join(sub)).unwrap();
        }
        let admin = root.join("run/admin.sock");
        let mut ports = BTreeMap::new();
        let mut lines = String::new();
        for (name, extra) in servers {
            let port = upstream();
            ports.insert((*name).to_owned(), port);
            lines.push_str(&format!(
                "    server {name} 127.0.0.1:{port} check inter 200ms rise 1 fall 1 {extra}\n"
            ));
        }
        let config = format!(
            "global\n    stats socket {admin} mode 600 level admin\n    stats timeout 10s\n\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\n\
             frontend fe\n    bind 127.0.0.1:{fe}\n    default_backend app\n\n\
             backend app\n    balance roundrobin\n{backend_extra}{lines}",
            admin = admin.display(),
            fe = free_port(),
        );
        let cfg = root.join("etc/haproxy.cfg");
        fs::write(&cfg, config).unwrap();
        Self {
            _dir: dir,
            root,
            cfg,
            admin,
            ports,
            child: None,
            args_seq: AtomicUsize::new(0),
        }
    }

    /// Starts `haproxy -W -db` on the config and waits until every server is up.
    pub fn start(&mut self) {
        let log = fs::File::create(self.root.join("run/haproxy.log")).unwrap();
        let child = Command::new("haproxy")
            .args(["-W", "-db", "-f"])
            .arg(&self.cfg)
            .arg("-S")
            .arg(self.root.join("run/master.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start haproxy");
        self.child = Some(child);
        self.wait_until("every server up", |lab| {
            lab.try_servers()
                .is_some_and(|s| !s.is_empty() && s.values().all(|l| l.op_state == 2 || l.maint()))
        });
    }

    /// Reloads through the master (SIGUSR2) and waits for the new worker.
    pub fn reload(&self) {
        let before = self.worker_pid();
        let master = self.child.as_ref().expect("started").id();
        let status = Command::new("kill")
            .args(["-USR2", &master.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_until("a new worker", |lab| {
            lab.try_command("show info")
                .and_then(|info| pid_of(&info))
                .is_some_and(|pid| Some(pid) != before)
        });
    }

    /// The master process's pid, written to `run/haproxy.pid` as `haproxy -p` would.
    pub fn write_pidfile(&self) -> PathBuf {
        let master = self.child.as_ref().expect("started").id();
        let pidfile = self.root.join("run/haproxy.pid");
        fs::write(&pidfile, format!("{master}\n")).unwrap();
        pidfile
    }

    /// The worker's pid as `show info` gives it.
    pub fn worker_pid(&self) -> Option<String> {
        self.try_command("show info").and_then(|info| pid_of(&info))
    }

    /// Waits until the live server `name` satisfies `ready` (health checks move its op_state).
    pub fn wait_for(&self, name: &str, what: &str, ready: impl Fn(&Live) -> bool) {
        self.wait_until(&format!("{name} {what}"), |lab| {
            lab.try_servers()
                .and_then(|servers| servers.get(name).copied())
                .is_some_and(|live| ready(&live))
        });
    }

    /// Runs `autoheal-server-info` on this lab (with its socket once started).
    pub fn info(&self, extra: Value) -> Value {
        let mut args = self.args(extra);
        args.as_object_mut().unwrap().remove("backup");
        let (result, code) = self.run(env!("CARGO_BIN_EXE_autoheal-server-info"), &args);
        assert_eq!(code, 0, "{result}");
        result
    }

    /// The `server_info` entry of server `name` in backend `app`.
    pub fn info_server(&self, name: &str) -> Value {
        let info = self.info(serde_json::json!({"backend": "app"}));
        info["backends"][0]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {info}"))
    }

    fn wait_until(&self, what: &str, ready: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !ready(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; haproxy log:\n{}",
                fs::read_to_string(self.root.join("run/haproxy.log")).unwrap_or_default()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_command(&self, command: &str) -> Option<String> {
        let mut stream = UnixStream::connect(&self.admin).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(format!("{command}\n").as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// Sends a runtime API command directly.
    pub fn command(&self, command: &str) -> String {
        self.try_command(command).expect("admin socket answers")
    }

    fn try_servers(&self) -> Option<BTreeMap<String, Live>> {
        let answer = self.try_command("show servers state app")?;
        let mut lines = answer.lines();
        lines.next()?;
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(' ').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
        let (name, op, admin, weight) = (
            col("srv_name"),
            col("srv_op_state"),
            col("srv_admin_state"),
            col("srv_uweight"),
        );
        Some(
            lines
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    let live = Live {
                        op_state: f[op].parse().unwrap(),
                        admin_state: f[admin].parse().unwrap(),
                        weight: f[weight].parse().unwrap(),
                    };
                    (f[name].to_owned(), live)
                })
                .collect(),
        )
    }

    /// The live servers of backend `app`.
    pub fn servers(&self) -> BTreeMap<String, Live> {
        self.try_servers().expect("show servers state answers")
    }

    /// Admin state and weight of every live server (op_state moves with health checks).
    pub fn admin_view(&self) -> BTreeMap<String, (u32, u32)> {
        self.servers()
            .into_iter()
            .map(|(n, l)| (n, (l.admin_state, l.weight)))
            .collect()
    }

    /// Base args for the server module on this lab's file.
    pub fn args(&self, extra: Value) -> Value {
        let mut args = serde_json::json!({"path": self.cfg, "backup": false});
        if self.child.is_some() {
            args["socket"] = Value::String(self.admin.display().to_string());
        }
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    }

    /// Runs a module binary with `args` in an args file; returns its result and exit code.
    pub fn run(&self, binary: &str, args: &Value) -> (Value, i32) {
        let n = self.args_seq.fetch_add(1, Ordering::SeqCst);
        let file = self.root.join(format!("args/{n}.json"));
        fs::write(&file, args.to_string()).unwrap();
        let output = Command::new(binary).arg(&file).output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "not one JSON object ({e}): {stdout:?}, stderr {:?}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (result, output.status.code().unwrap_or(-1))
    }

    /// Runs `autoheal-server`.
    pub fn server(&self, extra: Value) -> (Value, i32) {
        self.run(env!("CARGO_BIN_EXE_autoheal-server"), &self.args(extra))
    }

    /// The config's bytes.
    pub fn config(&self) -> Vec<u8> {
        fs::read(&self.cfg).unwrap()
    }

    /// The config's text.
    pub fn config_text(&self) -> String {
        fs::read_to_string(&self.cfg).unwrap()
    }

    /// Names in `etc/`.
    pub fn etc_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.root.join("etc"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM lets the master stop its worker; SIGKILL if it does not go in time.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pid_of(info: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .map(str::to_owned)
}

/// `haproxy -c` on a file.
pub fn haproxy_accepts(path: &Path) -> bool {
    Command::new("haproxy")
        .args(["-c", "-q", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success()
}

/// The uncommented `server NAME ...` line of the config, if any.
pub fn server_line<'a>(config: &'a str, name: &str) -> Option<&'a str> {
    let prefix = format!("server {name} ");
    config
        .lines()
        .map(str::trim_start)
        .find(|l| l.starts_with(&prefix))
}

/// The words after the address on a server line, e.g. `["check", ..., "weight", "0"]`.
pub fn server_words(config: &str, name: &str) -> Vec<String> {
    server_line(config, name)
        .unwrap_or_else(|| panic!("no server line for {name} in:\n{config}"))
        .split_whitespace()
        .skip(3)
        .map(str::to_owned)
        .collect()
}

/// The value after `weight` on the server line (HAProxy's default is 1).
pub fn config_weight(config: &str, name: &str) -> u32 {
    let words = server_words(config, name);
    words
        .iter()
        .rposition(|w| w == "weight")
        .map_or(1, |i| words[i + 1].parse().unwrap())
}

/// The checksum the modules report for a config holding `bytes` (its sha256, in hex).
pub fn sha256_hex(bytes: &[u8]) -> String {
    autoheal_module::file::sha256_hex([std::str::from_utf8(bytes).unwrap()])
}
