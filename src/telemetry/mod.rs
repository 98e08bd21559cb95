//! Logging with `tracing`: text for people or JSON for collectors, filtered by `log.filter` or
//! `RUST_LOG`. Each delivery gets a span with its stage, order id and message id. With
//! `telemetry.otlp_endpoint` set, the spans are exported as traces too (see [`otel`]).
//!
//! Those ids and many error texts come from outside, so text logs escape control characters in
//! the message and in every event and span field, and the JSON encoder escapes what JSON
//! requires. Either way one event is one line.

mod escape;
pub mod otel;
#[cfg(test)]
mod tests;

use std::io::IsTerminal;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::settings::{LogFormat, LogSettings, TelemetrySettings};

/// What the layers of the subscriber sit on.
type Base = tracing_subscriber::layer::Layered<EnvFilter, Registry>;

/// A layer of the subscriber: the log format, or the trace exporter.
type BoxedLayer = Box<dyn Layer<Base> + Send + Sync>;

/// Keeps the trace exporter; [`Telemetry::shutdown`] sends the spans it still holds.
#[must_use = "shut telemetry down at exit, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends what the exporter still holds and stops it.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // Blocks while the exporter's own thread sends the last batch.
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

/// Installs the global subscriber. Logs go to standard error, coloured only when that is a
/// terminal (a file or a log collector gets plain text); spans go to the OTLP collector when
/// one is configured.
pub fn init(settings: &LogSettings, telemetry: &TelemetrySettings) -> Telemetry {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let ansi = std::io::stderr().is_terminal();
    let (tracer, problem) = match otel::tracer(telemetry) {
        Ok(tracer) => (tracer, None),
        Err(error) => (None, Some(format!("{error:#}"))),
    };
    let (otel, provider) = match tracer {
        Some((tracer, provider)) => {
            let layer: BoxedLayer = tracing_opentelemetry::layer().with_tracer(tracer).boxed();
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    let _ = subscriber(filter, settings.format, ansi, std::io::stderr, otel).try_init();
    if let Some(problem) = problem {
        tracing::warn!(%problem, "traces are not exported");
    }
    Telemetry { provider }
}

/// The subscriber [`init`] installs, writing to `writer`, so tests can log through exactly what
/// production uses.
fn subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
    otel: Option<BoxedLayer>,
) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let log: BoxedLayer = match format {
        LogFormat::Text => fmt.fmt_fields(escape::EscapedFields).boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let layers: Vec<BoxedLayer> = std::iter::once(log).chain(otel).collect();
    tracing_subscriber::registry()
        .with(filter)
        .with(layers)
        .into()
}
