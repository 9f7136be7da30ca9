//! The `autoheal.haproxy.server` module binary: `autoheal-server ARGS_FILE`.

fn main() -> std::process::ExitCode {
    autoheal_module::respond(
        autoheal_module::read_args_file().and_then(|a| autoheal_module::server::run(&a)),
    )
}
