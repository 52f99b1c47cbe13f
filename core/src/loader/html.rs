//! HTML files, converted to readable text by a small, forgiving converter.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use super::{read_text, source_of, DocumentLoader};
use crate::Document;

/// Loads an HTML file as one document of readable text (see [`html_to_text`]), with
/// `source` and, when the page has one, `title` metadata from `<title>`.
///
/// ```no_run
/// use catena_core::loader::{DocumentLoader, HtmlLoader};
///
/// let docs = HtmlLoader::new("page.html").load()?;
/// println!("{:?}: {}", docs[0].metadata.get("title"), docs[0].content);
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlLoader {
    path: PathBuf,
}

impl HtmlLoader {
    /// A loader for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HtmlLoader { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DocumentLoader for HtmlLoader {
    fn load(&self) -> crate::Result<Vec<Document>> {
        let html = read_text(&self.path)?;
        let converted = convert(&html);
        let mut doc = Document::new(converted.text).with_metadata("source", source_of(&self.path));
        if let Some(title) = converted.title {
            doc = doc.with_metadata("title", title);
        }
        Ok(vec![doc])
    }
}

/// Converts HTML to readable plain text.
///
/// - `<script>`, `<style>`, `<noscript>`, `<template>`, `<svg>`, the whole `<head>` and
///   comments are dropped (the `<title>` is not part of the text);
/// - block elements (`<p>`, `<div>`, headings, list items, table rows, ...) and `<br>` end
///   the line; paragraphs, headings, lists, tables and `<pre>` are separated by a blank line;
/// - entities are decoded: named ones (`&amp;`, `&nbsp;`, `&eacute;`, ...) and numeric ones
///   (`&#233;`, `&#xE9;`); unknown ones are kept as written;
/// - whitespace runs collapse to one space, except inside `<pre>`.
///
/// It never fails: malformed markup is handled as well as it can be.
///
/// ```
/// use catena_core::loader::html_to_text;
///
/// let html = "<html><head><title>T</title><style>p{}</style></head>\
///             <body><h1>Caf&eacute;</h1><p>Open   <b>daily</b><br>9&ndash;5</p></body></html>";
/// assert_eq!(html_to_text(html), "Café\n\nOpen daily\n9–5");
/// ```
pub fn html_to_text(html: &str) -> String {
    convert(html).text
}

/// The converted text and the page title.
#[derive(Debug)]
struct Converted {
    text: String,
    title: Option<String>,
}

/// Elements whose content is dropped entirely.
const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "iframe", "object",
];

/// Elements that end a line.
const LINE_BLOCKS: &[&str] = &[
    "div",
    "li",
    "tr",
    "dt",
    "dd",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "form",
    "fieldset",
    "figure",
    "figcaption",
    "address",
    "details",
    "summary",
    "caption",
    "legend",
    "option",
    "body",
    "html",
    "center",
    "hgroup",
    "menu",
    "label",
];

/// Elements separated from their surroundings by a blank line.
const PARAGRAPH_BLOCKS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "dl",
    "table",
    "blockquote",
    "pre",
    "hr",
];

fn convert(html: &str) -> Converted {
    // ASCII lowercasing keeps byte offsets, so positions found in `lower` index `html`.
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let mut out = TextBuilder::default();
    let mut title: Option<String> = None;
    let mut in_head = false;
    let mut pre_depth = 0usize;
    let mut i = 0;

    while i < html.len() {
        let Some(rel) = html[i..].find('<') else {
            emit(&mut out, &html[i..], in_head, pre_depth);
            break;
        };
        let lt = i + rel;
        emit(&mut out, &html[i..lt], in_head, pre_depth);
        let rest = &html[lt..];

        if rest.starts_with("<!--") {
            i = find_from(html, lt + 4, "-->").map_or(html.len(), |e| e + 3);
            continue;
        }
        if rest.starts_with("<![CDATA[") {
            let end = find_from(html, lt + 9, "]]>").unwrap_or(html.len());
            if !in_head {
                out.text(&html[lt + 9..end]);
            }
            i = (end + 3).min(html.len());
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            i = find_from(html, lt, ">").map_or(html.len(), |e| e + 1);
            continue;
        }

        let closing = rest.starts_with("</");
        let name_start = lt + if closing { 2 } else { 1 };
        if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            // Not a tag: a literal `<`.
            emit(&mut out, "<", in_head, pre_depth);
            i = lt + 1;
            continue;
        }
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b':'))
            .count();
        let name = &lower[name_start..name_start + name_len];
        let end = tag_end(bytes, name_start + name_len);
        let self_closing = end > 0 && bytes.get(end - 1) == Some(&b'/');
        i = (end + 1).min(html.len());

        if closing {
            match name {
                "head" => in_head = false,
                "pre" => {
                    pre_depth = pre_depth.saturating_sub(1);
                    out.block(2);
                }
                _ => block_for(&mut out, name),
            }
            continue;
        }
        match name {
            "head" => in_head = true,
            "body" => {
                in_head = false;
                out.block(1);
            }
            "title" if !self_closing => {
                let close = find_from(&lower, i, "</title").unwrap_or(html.len());
                if title.is_none() {
                    let t = collapse(&decode_entities(&html[i..close]));
                    if !t.is_empty() {
                        title = Some(t);
                    }
                }
                i = close;
            }
            "br" => {
                if !in_head {
                    out.line_break();
                }
            }
            "pre" => {
                out.block(2);
                if !self_closing {
                    pre_depth += 1;
                }
            }
            "td" | "th" => out.space(),
            _ if DROPPED.contains(&name) && !self_closing => {
                let close = format!("</{name}");
                i = find_from(&lower, i, &close).unwrap_or(html.len());
            }
            _ => block_for(&mut out, name),
        }
    }

    Converted {
        text: out.finish(),
        title,
    }
}

fn block_for(out: &mut TextBuilder, name: &str) {
    if PARAGRAPH_BLOCKS.contains(&name) {
        out.block(2);
    } else if LINE_BLOCKS.contains(&name) {
        out.block(1);
    }
}

fn emit(out: &mut TextBuilder, raw: &str, in_head: bool, pre_depth: usize) {
    if in_head || raw.is_empty() {
        return;
    }
    let text = decode_entities(raw);
    if pre_depth > 0 {
        out.raw(&text);
    } else {
        out.text(&text);
    }
}

fn find_from(haystack: &str, from: usize, needle: &str) -> Option<usize> {
    haystack.get(from..)?.find(needle).map(|p| p + from)
}

/// The index of the `>` ending a tag whose attributes start at `from` (quoted attribute
/// values may contain `>`), or the input length when it is never closed.
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut quote: Option<u8> = None;
    let mut prev_significant = 0u8;
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None => match b {
                b'>' => return i,
                b'"' | b'\'' if prev_significant == b'=' => quote = Some(b),
                _ => {}
            },
        }
        if !b.is_ascii_whitespace() {
            prev_significant = b;
        }
    }
    bytes.len()
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Accumulates text, collapsing whitespace and merging requested line breaks.
#[derive(Debug, Default)]
struct TextBuilder {
    buf: String,
    pending_space: bool,
    pending_breaks: usize,
}

impl TextBuilder {
    fn flush(&mut self) {
        if self.pending_breaks > 0 {
            if !self.buf.is_empty() {
                for _ in 0..self.pending_breaks {
                    self.buf.push('\n');
                }
            }
            self.pending_breaks = 0;
            self.pending_space = false;
        } else if self.pending_space {
            self.buf.push(' ');
            self.pending_space = false;
        }
    }

    /// Text outside `<pre>`: whitespace runs become one space.
    fn text(&mut self, s: &str) {
        for c in s.chars() {
            if c.is_whitespace() {
                self.space();
            } else {
                self.flush();
                self.buf.push(c);
            }
        }
    }

    /// Text inside `<pre>`: kept as is (line endings normalised).
    fn raw(&mut self, s: &str) {
        self.flush();
        self.buf.push_str(&s.replace("\r\n", "\n"));
    }

    fn space(&mut self) {
        if !self.buf.is_empty() && self.pending_breaks == 0 {
            self.pending_space = true;
        }
    }

    /// Ends the line (`n == 1`) or the paragraph (`n == 2`).
    fn block(&mut self, n: usize) {
        self.pending_breaks = self.pending_breaks.max(n);
        self.pending_space = false;
    }

    /// `<br>`: each one adds a line break (up to a blank line).
    fn line_break(&mut self) {
        if !self.buf.is_empty() {
            self.pending_breaks = (self.pending_breaks + 1).min(2);
            self.pending_space = false;
        }
    }

    fn finish(self) -> String {
        let mut out = String::with_capacity(self.buf.len());
        let mut blank_run = 0;
        for line in self.buf.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.trim().to_owned()
    }
}

/// Decodes character references: named (a common subset), decimal and hexadecimal.
fn decode_entities(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        match decode_one(after) {
            Some((decoded, consumed)) => {
                out.push_str(&decoded);
                rest = &after[consumed..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Decodes the reference at the start of `s` (just after `&`); returns the text and the
/// number of bytes consumed.
fn decode_one(s: &str) -> Option<(String, usize)> {
    if let Some(num) = s.strip_prefix('#') {
        let (digits, radix, prefix) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits
            .bytes()
            .take_while(|b| (*b as char).is_digit(radix))
            .count();
        if len == 0 {
            return None;
        }
        let value = u32::from_str_radix(&digits[..len], radix).unwrap_or(u32::MAX);
        let c = match value {
            0 => '\u{fffd}',
            v => char::from_u32(v).unwrap_or('\u{fffd}'),
        };
        let semicolon = usize::from(digits[len..].starts_with(';'));
        return Some((c.to_string(), prefix + len + semicolon));
    }
    let len = s
        .bytes()
        .take(32)
        .take_while(u8::is_ascii_alphanumeric)
        .count();
    let name = &s[..len];
    if s[len..].starts_with(';') {
        return named_entity(name).map(|c| (c.to_owned(), len + 1));
    }
    // A few legacy references are recognised without the semicolon (`&lt3` is `<3`).
    ["amp", "lt", "gt", "quot", "nbsp"]
        .into_iter()
        .find(|legacy| s.starts_with(legacy) && !s[legacy.len()..].starts_with('='))
        .and_then(|legacy| named_entity(legacy).map(|c| (c.to_owned(), legacy.len())))
}

fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => "\u{a0}",
        "ensp" => "\u{2002}",
        "emsp" => "\u{2003}",
        "thinsp" => "\u{2009}",
        "zwnj" => "\u{200c}",
        "zwj" => "\u{200d}",
        "shy" => "\u{ad}",
        "copy" => "©",
        "reg" => "®",
        "trade" => "™",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "lsquo" => "‘",
        "rsquo" => "’",
        "sbquo" => "‚",
        "ldquo" => "“",
        "rdquo" => "”",
        "bdquo" => "„",
        "laquo" => "«",
        "raquo" => "»",
        "lsaquo" => "‹",
        "rsaquo" => "›",
        "bull" => "•",
        "middot" => "·",
        "dagger" => "†",
        "euro" => "€",
        "pound" => "£",
        "yen" => "¥",
        "cent" => "¢",
        "curren" => "¤",
        "sect" => "§",
        "para" => "¶",
        "deg" => "°",
        "plusmn" => "±",
        "times" => "×",
        "divide" => "÷",
        "minus" => "−",
        "frac12" => "½",
        "frac14" => "¼",
        "frac34" => "¾",
        "sup2" => "²",
        "sup3" => "³",
        "micro" => "µ",
        "iexcl" => "¡",
        "iquest" => "¿",
        "larr" => "←",
        "rarr" => "→",
        "uarr" => "↑",
        "darr" => "↓",
        "harr" => "↔",
        "le" => "≤",
        "ge" => "≥",
        "ne" => "≠",
        "asymp" => "≈",
        "infin" => "∞",
        "hearts" => "♥",
        "check" => "✓",
        "aacute" => "á",
        "agrave" => "à",
        "acirc" => "â",
        "auml" => "ä",
        "atilde" => "ã",
        "aring" => "å",
        "aelig" => "æ",
        "ccedil" => "ç",
        "eacute" => "é",
        "egrave" => "è",
        "ecirc" => "ê",
        "euml" => "ë",
        "iacute" => "í",
        "igrave" => "ì",
        "icirc" => "î",
        "iuml" => "ï",
        "ntilde" => "ñ",
        "oacute" => "ó",
        "ograve" => "ò",
        "ocirc" => "ô",
        "ouml" => "ö",
        "otilde" => "õ",
        "oslash" => "ø",
        "uacute" => "ú",
        "ugrave" => "ù",
        "ucirc" => "û",
        "uuml" => "ü",
        "yacute" => "ý",
        "yuml" => "ÿ",
        "szlig" => "ß",
        "Aacute" => "Á",
        "Agrave" => "À",
        "Acirc" => "Â",
        "Auml" => "Ä",
        "Aring" => "Å",
        "AElig" => "Æ",
        "Ccedil" => "Ç",
        "Eacute" => "É",
        "Egrave" => "È",
        "Ecirc" => "Ê",
        "Iacute" => "Í",
        "Ntilde" => "Ñ",
        "Oacute" => "Ó",
        "Ouml" => "Ö",
        "Oslash" => "Ø",
        "Uacute" => "Ú",
        "Uuml" => "Ü",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities() {
        assert_eq!(decode_entities("a &amp; b"), "a & b");
        assert_eq!(decode_entities("&#65;&#x42;&#X43;&#68"), "ABCD");
        assert_eq!(
            decode_entities("&#0;&#xD800;&#x110000;"),
            "\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(decode_entities("AT&T &unknown; &"), "AT&T &unknown; &");
        assert_eq!(decode_entities("&amp=1 &lt3"), "&amp=1 <3");
        assert_eq!(decode_entities("&#xFFFFFFFFFF;"), "\u{fffd}");
    }

    #[test]
    fn structure() {
        let html = "<div>a<div>b</div></div><ul><li>x</li><li>y</li></ul>c";
        assert_eq!(html_to_text(html), "a\nb\n\nx\ny\n\nc");
        assert_eq!(html_to_text("a<br>b<br><br><br>c"), "a\nb\n\nc");
        assert_eq!(
            html_to_text("<table><tr><td>1</td><td>2</td></tr><tr><td>3</td></tr></table>"),
            "1 2\n3"
        );
    }

    #[test]
    fn pre_keeps_whitespace() {
        assert_eq!(
            html_to_text("<p>x</p><pre>  fn  main() {\n    1 &lt; 2\n}</pre>after"),
            "x\n\n  fn  main() {\n    1 < 2\n}\n\nafter"
        );
    }

    #[test]
    fn malformed_input() {
        assert_eq!(html_to_text("1 < 2 and 3 <4"), "1 < 2 and 3 <4");
        assert_eq!(
            html_to_text("<a href='x>y'>link</a> <!-- never closed"),
            "link"
        );
        assert_eq!(html_to_text("<script>never closed"), "");
        assert_eq!(html_to_text("<p title=\"a > b\">t</p"), "t");
        assert_eq!(html_to_text("<SCRIPT>x</SCRIPT>Y"), "Y");
    }

    #[test]
    fn title() {
        let c = convert("<head><title> A &amp;\n B </title></head><body>t</body>");
        assert_eq!(c.title.as_deref(), Some("A & B"));
        assert_eq!(c.text, "t");
    }
}
