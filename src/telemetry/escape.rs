//! Field formatting for text logs that escapes what could forge a line or steer a terminal.
//!
//! Message ids, order ids and error texts can quote anything a sender put in a message. Written
//! raw, a newline in one starts a fake log line and an ESC sequence can clear the operator's
//! screen. Every value is therefore written through [`Escaping`], after it has been formatted, so
//! whatever a `Debug` or `Display` implementation emits is covered.

use std::fmt::{self, Write};
use std::mem;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// The text format's field formatter: the message, event fields and span fields look as they do
/// by default (`message name=value …`), with every value escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = EscapingVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> Self::Visitor {
        EscapingVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields, separated by spaces, each value escaped.
pub struct EscapingVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write_field(&mut self, name: &str, value: &dyn fmt::Debug) -> fmt::Result {
        if !mem::replace(&mut self.is_empty, false) {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            self.write_name(name.strip_prefix("r#").unwrap_or(name))?;
        }
        write!(Escaping(&mut self.writer), "{value:?}")
    }

    /// Writes `name=`, italic and dimmed as the default format does when colours are on. Names
    /// are identifiers in the source, so they need no escaping.
    fn write_name(&mut self, name: &str) -> fmt::Result {
        if self.writer.has_ansi_escapes() {
            write!(self.writer, "\x1b[3m{name}\x1b[0m\x1b[2m=\x1b[0m")
        } else {
            write!(self.writer, "{name}=")
        }
    }
}

impl Visit for EscapingVisitor<'_> {
    /// The message is shown bare; other strings quoted, as by default.
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `log.*` fields carry the metadata of records from the `log` crate, which the event
        // formatter has already shown.
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        self.result = self.write_field(field.name(), value);
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapingVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A writer that passes printable text through unchanged and writes each character that
/// [`needs_escape`] as an escape: `\n`, `\r`, `\t`, otherwise `\u{1b}`.
pub struct Escaping<W>(pub W);

impl<W: Write> Write for Escaping<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut start = 0;
        for (at, ch) in text.char_indices().filter(|&(_, ch)| needs_escape(ch)) {
            self.0.write_str(&text[start..at])?;
            write_escape(&mut self.0, ch)?;
            start = at + ch.len_utf8();
        }
        self.0.write_str(&text[start..])
    }
}

/// Control characters (Unicode category Cc: U+0000–U+001F, U+007F–U+009F), the line and
/// paragraph separators, and the bidi embedding, override and isolate characters, which can
/// make a line read differently from what it holds.
pub fn needs_escape(ch: char) -> bool {
    ch.is_control()
        || matches!(
            ch,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn write_escape(out: &mut impl Write, ch: char) -> fmt::Result {
    match ch {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        _ => write!(out, "\\u{{{:x}}}", u32::from(ch)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = String::new();
        Escaping(&mut out).write_str(text).unwrap();
        out
    }

    #[test]
    fn control_characters_separators_and_bidi_controls_become_escapes() {
        let cases = [
            ("a\nb", "a\\nb"),
            ("\r", "\\r"),
            ("\t", "\\t"),
            ("\x1b[2J", "\\u{1b}[2J"),
            ("\0", "\\u{0}"),
            ("\u{7f}\u{85}\u{9f}", "\\u{7f}\\u{85}\\u{9f}"),
            ("\u{2028}\u{2029}", "\\u{2028}\\u{2029}"),
            (
                "\u{202a}\u{202e}\u{2066}\u{2069}",
                "\\u{202a}\\u{202e}\\u{2066}\\u{2069}",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(escaped(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn printable_text_is_unchanged() {
        let text = "café 日本 \"quoted\" it's \\n ok \u{a0}\u{200d}";
        assert_eq!(escaped(text), text);
    }
}
