//! Renders documents as PDF with the standard fonts (no font files needed): the title in
//! Helvetica Bold, the body in Courier so columns line up. A4 pages.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use crate::domain::documents::DocumentContent;

const LINES_PER_PAGE: usize = 48;
const PAGE: (f32, f32) = (595.0, 842.0);

/// A PDF of the document, one A4 page per 48 lines.
pub fn pdf(document: &DocumentContent) -> Vec<u8> {
    let lines = document.text_lines();
    let pages: Vec<&[String]> = lines.chunks(LINES_PER_PAGE).collect();
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
    let title = format!("{} {}", document.kind.title(), document.number);
    pdf.document_info(info)
        .title(TextStr(&title))
        .producer(TextStr("fulfilment"));
    for (i, text) in pages.iter().enumerate() {
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
        for (n, line) in text.iter().enumerate() {
            let (name, size) = if i == 0 && n == 0 {
                (font_name, 16.0)
            } else {
                (body_name, 8.0)
            };
            content.begin_text();
            content.set_font(name, size);
            content.next_line(50.0, PAGE.1 - 60.0 - 15.0 * n as f32);
            content.show(Str(ascii(line).as_bytes()));
            content.end_text();
        }
        pdf.stream(content_id, &content.finish());
    }
    pdf.type1_font(font).base_font(Name(b"Helvetica-Bold"));
    pdf.type1_font(body_font).base_font(Name(b"Courier"));
    pdf.finish()
}

/// Keeps printable ASCII (the standard font's encoding); anything else becomes `?`.
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}
