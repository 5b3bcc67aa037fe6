//! `dsfiles completions SHELL`: the shell's completion script, generated from the clap
//! definition ([`crate::cli::Cli`]) by clap_complete and printed to stdout, so it can never
//! name a flag the binary does not have.

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit::Exit;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Install, for example:
  dsfiles completions bash > ~/.local/share/bash-completion/completions/dsfiles
  dsfiles completions zsh > ~/.zfunc/_dsfiles        (with `fpath+=~/.zfunc` in ~/.zshrc)
  dsfiles completions fish > ~/.config/fish/completions/dsfiles.fish
The container image ships the bash, zsh and fish scripts (docs/deploy.md).")]
pub struct CompletionsArgs {
    /// The shell to generate the completion script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

pub fn run(args: &CompletionsArgs) -> anyhow::Result<Exit> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "dsfiles", &mut script);
    super::write_stdout(&script)
}
