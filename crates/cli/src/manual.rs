//! `plannt completions SHELL` and `plannt man [COMMAND]`: shell completions and manual pages,
//! generated from the same clap definitions as `--help`, so they never drift from it.
//!
//! Both are rendered in memory, then written at once: a closed standard output ends the
//! command quietly, as for every other command.

use clap_complete::Shell;

use crate::error::Error;
use crate::out;

/// `plannt completions`' arguments.
#[derive(clap::Args)]
#[command(after_help = "Install them where your shell looks:
  bash  plannt completions bash > ~/.local/share/bash-completion/completions/plannt
  zsh   plannt completions zsh > ~/.zfunc/_plannt   (with fpath+=(~/.zfunc) before compinit)
  fish  plannt completions fish > ~/.config/fish/completions/plannt.fish")]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

/// `plannt man`'s arguments.
#[derive(clap::Args)]
#[command(
    after_help = "Read it with `plannt man | man -l -` (and `plannt man get | man -l -`), or install it:
  plannt man > ~/.local/share/man/man1/plannt.1
  plannt man get > ~/.local/share/man/man1/plannt-get.1"
)]
pub struct ManArgs {
    /// A command's own page (plannt-get(1), …) instead of plannt(1).
    command: Option<String>,
}

/// Prints the completion script of `args.shell` for `command` (the whole `plannt`).
pub fn completions(args: &CompletionsArgs, mut command: clap::Command) -> Result<(), Error> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "plannt", &mut script);
    out::print_bytes(&script)
}

/// Prints the manual page, in roff, of `command` or of its subcommand `args.command`.
pub fn man(args: &ManArgs, command: clap::Command) -> Result<(), Error> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let page = match &args.command {
        None => command,
        Some(name) => command.find_subcommand(name).cloned().ok_or_else(|| {
            let names: Vec<&str> = command.get_subcommands().map(|c| c.get_name()).collect();
            Error::Usage(format!(
                "no command {name:?}; the commands are {}",
                names.join(", ")
            ))
        })?,
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| Error::failed("cannot render the manual page", e))?;
    out::print_bytes(&roff)
}
