//! `autoheal.haproxy.server_info`: list backends and servers, from the file and live. Read-only.

use std::collections::BTreeMap;

use crate::args::InfoArgs;
use crate::file::{read_text, sha256_hex};
use crate::health::{self, CheckStatus};
use crate::result::{ConfigView, InfoBackend, InfoResult, InfoServer, LiveView};
use crate::runtime::{AdminSocket, BackendState};
use crate::ModuleError;

/// Runs the module on the args file's text. Check mode changes nothing: the module never writes.
pub fn run(args_text: &str) -> Result<InfoResult, ModuleError> {
    let args = InfoArgs::parse(args_text)?;
    execute(&args)
}

/// Runs the module with parsed options.
pub fn execute(args: &InfoArgs) -> Result<InfoResult, ModuleError> {
    let source = read_text(&args.path)?;
    let live: Option<BTreeMap<String, BackendState>> = match &args.socket {
        None => None,
        Some(path) => {
            let socket = AdminSocket::new(path, args.socket_timeout);
            Some(match &args.backend {
                Some(backend) => {
                    BTreeMap::from([(backend.clone(), socket.backend_state(backend)?)])
                }
                None => socket.all_state()?,
            })
        }
    };
    let mut backends: Vec<InfoBackend> = Vec::new();
    for server in haproxy_cfg::inventory(&source) {
        if args.backend.as_ref().is_some_and(|b| *b != server.backend) {
            continue;
        }
        let live_server = live.as_ref().map(|backends| {
            backends
                .get(&server.backend)
                .and_then(|servers| servers.get(&server.name))
        });
        let entry = InfoServer {
            check_status: CheckStatus::of(&server.state, live_server),
            set_by: health::set_by(&server.state, live_server.flatten()).map(health::set_by_label),
            slowstart: server.state.slowstart_ms,
            live: live_server.map(LiveView::of),
            name: server.name,
            address: server.address,
            line: server.line,
            config: ConfigView::from(&server.state),
        };
        match backends.last_mut() {
            Some(last) if last.name == server.backend => last.servers.push(entry),
            _ => backends.push(InfoBackend {
                name: server.backend,
                servers: vec![entry],
            }),
        }
    }
    Ok(InfoResult {
        changed: false,
        path: args.path.display().to_string(),
        checksum: sha256_hex([source.as_str()]),
        backends,
    })
}
