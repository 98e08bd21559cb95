//! Traces exported over OTLP, when `telemetry.otlp_endpoint` is set (off by default).
//!
//! An order keeps one trace from intake to revenue: every message carries a W3C `traceparent`
//! header, and the span that handles a message (a stage's delivery, an HTTP intake, a timer
//! firing, a review decision) is made the child of the span that sent it; the events it causes
//! carry its own span id, so a tracing backend shows the order as one tree. Without an
//! exporter the same headers flow, each hop with a span id of its own, and no span is kept.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::envelope::TraceParent;
use crate::settings::{OtlpProtocol, TelemetrySettings};

/// Whether spans are exported: only then do they take part in the trace context.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The tracer that exports to the configured endpoint, and its provider (to flush at exit);
/// `None` when no endpoint is configured.
pub fn tracer(settings: &TelemetrySettings) -> anyhow::Result<Option<(Tracer, SdkTracerProvider)>> {
    let endpoint = settings.otlp_endpoint.trim();
    if endpoint.is_empty() {
        return Ok(None);
    }
    let protocol = match settings.otlp_protocol {
        OtlpProtocol::HttpProtobuf => Protocol::HttpBinary,
        OtlpProtocol::HttpJson => Protocol::HttpJson,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_protocol(protocol)
        .build()
        .with_context(|| format!("building the OTLP exporter for {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    EXPORTING.store(true, Ordering::Relaxed);
    Ok(Some((provider.tracer("fulfilment"), provider)))
}

/// Makes `span` (new, not yet entered) the child of the hop that sent `parent`, or the root of
/// a new trace, and returns the trace context the messages it causes carry.
pub fn continue_trace(span: &tracing::Span, parent: Option<&TraceParent>) -> TraceParent {
    let fallback = || parent.map_or_else(TraceParent::new_root, TraceParent::child);
    if !EXPORTING.load(Ordering::Relaxed) {
        return fallback();
    }
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from_bytes(parent.trace_id_u128().to_be_bytes()),
            SpanId::from_bytes(parent.span_id_u64().to_be_bytes()),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let context = opentelemetry::Context::new().with_remote_span_context(remote);
        // Fails only for a span already started, which callers never pass.
        let _ = span.set_parent(context);
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    if !own.is_valid() {
        return fallback();
    }
    let trace_id = u128::from_be_bytes(own.trace_id().to_bytes());
    let span_id = u64::from_be_bytes(own.span_id().to_bytes());
    TraceParent::from_ids(trace_id, span_id).unwrap_or_else(fallback)
}
