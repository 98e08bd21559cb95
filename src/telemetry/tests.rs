//! Logs through the production subscriber into a buffer.

use std::io;
use std::sync::{Arc, Mutex};

use tracing::{info, info_span, warn};
use tracing_subscriber::EnvFilter;

use super::escape::needs_escape;
use super::subscriber;
use crate::settings::LogFormat;

const FORGED: &str = "abc\n2026-11-30T00:00:00Z  INFO forged line";
const CLEAR: &str = "\x1b[2J";

/// A shared buffer the subscriber writes to.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `log` with the subscriber `init` would install and returns what it wrote.
fn captured(format: LogFormat, ansi: bool, log: impl FnOnce()) -> String {
    let capture = Capture::default();
    let writer = capture.clone();
    let dispatch = subscriber(
        EnvFilter::new("info"),
        format,
        ansi,
        move || writer.clone(),
        None,
    );
    tracing::dispatcher::with_default(&dispatch, log);
    let bytes = capture.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

/// An event and a span (with a field recorded late) whose values hold every hostile kind.
fn log_hostile_values() {
    let span = info_span!(
        "delivery",
        stage = "verify",
        message_id = %FORGED,
        order_id = tracing::field::Empty,
    );
    span.record("order_id", format!("o1{CLEAR}\r").as_str());
    let _entered = span.enter();
    warn!(
        error = %format!("bad {FORGED}"),
        cr = %"x\ry",
        nul = %"x\0y",
        separator = %"x\u{2028}y",
        bidi = %"x\u{202e}y",
        tab = ?"x\ty",
        "failed on {CLEAR} and {FORGED}"
    );
    info!("{FORGED}");
}

/// Splits `out` into lines, checking it ends with a newline and that no line holds a character
/// that needs escaping.
fn clean_lines(out: &str) -> Vec<&str> {
    assert!(out.ends_with('\n'), "{out:?}");
    let lines: Vec<&str> = out.split_terminator('\n').collect();
    for line in &lines {
        assert!(
            !line.chars().any(needs_escape),
            "raw control character in {line:?}"
        );
    }
    lines
}

#[test]
fn text_logs_escape_the_message_event_fields_and_span_fields() {
    let out = captured(LogFormat::Text, false, log_hostile_values);
    let lines = clean_lines(&out);
    assert_eq!(lines.len(), 2, "{out}");

    let span = r#"delivery{stage="verify" message_id=abc\n2026-11-30T00:00:00Z  INFO forged line order_id="o1\u{1b}[2J\r"}"#;
    assert!(lines.iter().all(|line| line.contains(span)), "{out}");
    for escaped in [
        r"failed on \u{1b}[2J and abc\n2026-11-30T00:00:00Z  INFO forged line",
        r"error=bad abc\n2026-11-30T00:00:00Z  INFO forged line",
        r"cr=x\ry",
        r"nul=x\u{0}y",
        r"separator=x\u{2028}y",
        r"bidi=x\u{202e}y",
        r#"tab="x\ty""#,
    ] {
        assert!(
            lines[0].contains(escaped),
            "{escaped} missing from {}",
            lines[0]
        );
    }
    assert!(
        lines[1].ends_with(r"abc\n2026-11-30T00:00:00Z  INFO forged line"),
        "{out}"
    );
}

#[test]
fn coloured_text_logs_escape_values_too() {
    let out = captured(LogFormat::Text, true, log_hostile_values);
    let lines: Vec<&str> = out.split_terminator('\n').collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        !out.contains(CLEAR) && !out.contains('\r') && !out.contains('\0'),
        "{out:?}"
    );
    assert!(out.contains(r"\u{1b}[2J"), "{out:?}");
}

#[test]
fn text_logs_leave_printable_text_alone() {
    let text = "café 日本 \"quoted\" it's";
    let out = captured(LogFormat::Text, false, || {
        let _entered = info_span!("delivery", message_id = %text).entered();
        info!(note = %text, "{text}");
    });
    let lines = clean_lines(&out);
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains(&format!("delivery{{message_id={text}}}")),
        "{out}"
    );
    assert!(lines[0].ends_with(&format!("{text} note={text}")), "{out}");
}

#[test]
fn json_logs_are_one_valid_line_holding_the_value_intact() {
    let value = format!("{FORGED}\r{CLEAR}\0\u{2028}");
    let out = captured(LogFormat::Json, false, || {
        let _entered = info_span!("delivery", message_id = %value).entered();
        warn!(error = %value, "{value}");
    });
    assert!(out.ends_with('\n'), "{out:?}");
    let lines: Vec<&str> = out.split_terminator('\n').collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(!lines[0].contains(|ch: char| ch < ' '), "{out:?}");
    let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(event["fields"]["error"], value.as_str());
    assert_eq!(event["fields"]["message"], value.as_str());
    assert_eq!(event["span"]["message_id"], value.as_str());
}
