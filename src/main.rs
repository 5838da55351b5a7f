//! The `gongkai` command. Everything lives in the library; this file only maps the outcome of a
//! command to the process exit code.

fn main() -> std::process::ExitCode {
    gongkai::cli::main()
}
