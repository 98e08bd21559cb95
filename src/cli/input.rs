//! Reading a secret from standard input: at a terminal, with a prompt and without echo, so it
//! is neither in the shell's history nor on the screen.

use std::io::{BufRead, IsTerminal, Write};

/// One line from standard input, without its line ending. At a terminal, `prompt` is shown on
/// standard error and what is typed is not echoed.
pub fn secret(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let _quiet = terminal.then(|| {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        NoEcho::start()
    });
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if terminal {
        eprintln!();
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Terminal echo turned off until dropped.
struct NoEcho {
    #[cfg(unix)]
    saved: Option<libc::termios>,
}

impl NoEcho {
    fn start() -> Self {
        #[cfg(unix)]
        {
            // SAFETY: tcgetattr and tcsetattr only read and write the termios struct given,
            // for standard input, which is open for the life of the process.
            unsafe {
                let mut term: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(libc::STDIN_FILENO, &mut term) != 0 {
                    return Self { saved: None };
                }
                let saved = term;
                term.c_lflag &= !libc::ECHO;
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &term);
                Self { saved: Some(saved) }
            }
        }
        #[cfg(not(unix))]
        Self {}
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            // SAFETY: restores the attributes read in `start`, for the same descriptor.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
            }
        }
    }
}
