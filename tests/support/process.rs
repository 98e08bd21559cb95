//! `fulfilment` itself, run as a child process by a test: long-running commands (`run`) as a
//! [`Process`] stopped when dropped, one-shot commands through [`fulfilment`].

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use fulfilment::settings::Settings;

/// The binary with the test's namespace and database, fast relay and scheduler, and `vars`.
fn command(settings: &Settings, args: &[&str], vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fulfilment"));
    command
        .args(args)
        .env_remove("FULFILMENT_ENV")
        .env("FULFILMENT__AMQP__NAMESPACE", &settings.amqp.namespace)
        .env("FULFILMENT__DATABASE__URL", settings.database.url.expose())
        .env("FULFILMENT__SCHEDULER__INTERVAL_MS", "100")
        .env("FULFILMENT__RELAY__INTERVAL_MS", "100")
        .env("RUST_LOG", "info");
    for (key, value) in vars {
        command.env(key, value);
    }
    command
}

/// Runs a one-shot command to its end with `stdin` as its input.
pub fn fulfilment(
    settings: &Settings,
    args: &[&str],
    vars: &[(&str, String)],
    stdin: &str,
) -> Output {
    let mut child = command(settings, args, vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// A `fulfilment run` process of a test, stopped (SIGTERM, then killed) when dropped.
pub struct Process {
    /// The child.
    pub child: Child,
    log: std::path::PathBuf,
}

impl Process {
    /// Starts `fulfilment run` on the test's database and namespace, with `vars` added.
    pub fn run(settings: &Settings, vars: &[(&str, String)]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "{}-{}.log",
            settings.amqp.namespace,
            uuid::Uuid::new_v4().simple()
        ));
        let file = std::fs::File::create(&log).unwrap();
        let child = command(settings, &["run"], vars)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// What the process has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: signalling a child this test owns and has not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_file(&self.log);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local address nothing listens on now.
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}
