//! `tapir`: the telephony call-control server (`tapir serve`) and its
//! command line client (`tapir lines`, `tapir call …`, `tapir admin …`);
//! everything lives in the `cli` module.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
