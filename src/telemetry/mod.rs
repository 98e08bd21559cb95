//! Logging with `tracing`: text for people or JSON for collectors, filtered by `log.filter` or
//! `RUST_LOG`. Each delivery gets a span with its stage, order id and message id.
//!
//! Those ids and many error texts come from outside, so text logs escape control characters in
//! the message and in every event and span field, and the JSON encoder escapes what JSON
//! requires. Either way one event is one line.

mod escape;
#[cfg(test)]
mod tests;

use std::io::IsTerminal;

use tracing::Dispatch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber. Logs go to standard error, coloured only when that is a
/// terminal (a file or a log collector gets plain text).
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let ansi = std::io::stderr().is_terminal();
    let _ = subscriber(filter, settings.format, ansi, std::io::stderr).try_init();
}

/// The subscriber [`init`] installs, writing to `writer`, so tests can log through exactly what
/// production uses.
fn subscriber<W>(filter: EnvFilter, format: LogFormat, ansi: bool, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.fmt_fields(escape::EscapedFields).finish().into(),
        LogFormat::Json => builder.json().finish().into(),
    }
}
