//! The `autoheal.haproxy.server_info` module binary: `autoheal-server-info ARGS_FILE`.

fn main() -> std::process::ExitCode {
    autoheal_module::respond(
        autoheal_module::read_args_file().and_then(|a| autoheal_module::info::run(&a)),
    )
}
