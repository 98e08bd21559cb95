//! Renders documents as PDF with the standard fonts (no font files needed): titles in Helvetica
//! Bold, the body in Courier so columns line up, both in the Windows ANSI encoding (so `£`, `€`
//! and accented Latin letters print). A4 pages, laid out by
//! [`layout`](crate::domain::documents::layout). A voided copy carries a large VOID mark
//! across every page besides its VOID line.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::domain::documents::DocumentContent;
use crate::domain::documents::layout::{self, VoidMark};

const PAGE: (f32, f32) = (595.0, 842.0);
const LEFT: f32 = 50.0;
const TOP: f32 = 802.0;
const LEADING: f32 = 11.0;

/// The document as issued: a PDF of its pages.
pub fn pdf(document: &DocumentContent) -> Vec<u8> {
    draw(document, None)
}

/// A voided copy of the document: its pages with a VOID mark saying when it was voided and
/// what replaced it.
pub fn void_copy(document: &DocumentContent, mark: &VoidMark) -> Vec<u8> {
    draw(document, Some(mark))
}

fn draw(document: &DocumentContent, void: Option<&VoidMark>) -> Vec<u8> {
    let pages = document.pages(void);
    let title = layout::title(document);
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let font = Ref::new(3);
    let info = Ref::new(4);
    let body_font = Ref::new(5);
    let font_name = Name(b"F1");
    let body_name = Name(b"F2");
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(10 + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    let info_title = match void {
        Some(_) => format!("{title} (VOID)"),
        None => title.clone(),
    };
    pdf.document_info(info)
        .title(TextStr(&info_title))
        .producer(TextStr("fulfilment"));
    for (i, lines) in pages.iter().enumerate() {
        let content_id = Ref::new(11 + 2 * i as i32);
        let mut page = pdf.page(page_ids[i]);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1));
        page.parent(tree);
        page.contents(content_id);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(font_name, font);
        fonts.pair(body_name, body_font);
        fonts.finish();
        resources.finish();
        page.finish();
        let mut content = Content::new();
        if void.is_some() {
            watermark(&mut content, font_name);
        }
        for (n, line) in lines.iter().enumerate() {
            if line.is_empty() {
                continue;
            }
            let heading = line.starts_with(&title) || line.starts_with("VOID");
            let (name, size) = if heading {
                (font_name, 12.0)
            } else {
                (body_name, 8.0)
            };
            content.begin_text();
            content.set_font(name, size);
            content.next_line(LEFT, TOP - LEADING * n as f32);
            content.show(Str(&win_ansi(line)));
            content.end_text();
        }
        pdf.stream(content_id, &content.finish());
    }
    pdf.type1_font(font)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(body_font)
        .base_font(Name(b"Courier"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.finish()
}

/// A large grey VOID across the page, beneath the text.
fn watermark(content: &mut Content, font: Name<'_>) {
    let (sin, cos) = std::f32::consts::FRAC_PI_6.sin_cos();
    content.save_state();
    content.set_fill_gray(0.85);
    content.begin_text();
    content.set_font(font, 150.0);
    content.set_text_matrix([cos, sin, -sin, cos, 130.0, 300.0]);
    content.show(Str(b"VOID"));
    content.end_text();
    content.restore_state();
}

/// The text in the Windows ANSI encoding: printable ASCII and Latin-1 as they are, the euro sign
/// and typographic quotes and dashes at their places, anything else as `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '–' => 0x96,
            '—' => 0x97,
            _ => b'?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_encoded_for_the_standard_fonts() {
        assert_eq!(win_ansi("£12 €3 é"), b"\xa312 \x803 \xe9");
        assert_eq!(win_ansi("tab\there ✓"), b"tab?here ?");
    }
}
