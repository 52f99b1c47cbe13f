//! Word (.docx) files: one document per file (feature `docx`, pure Rust with `zip` and
//! `quick-xml`).
//!
//! ```no_run
//! use catena_core::loader::{DocumentLoader, DocxLoader};
//!
//! let docs = DocxLoader::new("handbook.docx").load()?;
//! println!("{:?}: {}", docs[0].metadata.get("title"), docs[0].content);
//! # Ok::<(), catena_core::Error>(())
//! ```

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;
use zip::result::ZipError;
use zip::ZipArchive;

use super::{read_bytes_capped, source_of, DocumentLoader, LoadError, DEFAULT_MAX_FILE_BYTES};
use crate::Document;

const FORMAT: &str = "DOCX";
/// Where the main document part is when the package relationships do not say.
const DEFAULT_MAIN_PART: &str = "word/document.xml";
/// The relationship type naming the main document part.
const OFFICE_DOCUMENT_REL: &str =
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument";

/// Loads a Word document (Office Open XML, `.docx`) as one document: the text of the
/// body, paragraphs separated by a blank line, table rows as lines of tab-separated cells
/// (a table inside a cell is part of that cell's text, its cells and rows separated by
/// spaces), `w:tab` and `w:br` as a tab and a line break. Headings are paragraphs like any other;
/// deleted text (tracked changes), field codes and the fallback copy of text boxes are left
/// out. Metadata: `source`, and `title` from the core properties (`docProps/core.xml`) when
/// present.
///
/// Hostile input is bounded and typed, never a panic:
/// - a file over the cap ([`DEFAULT_MAX_FILE_BYTES`], or [`max_bytes`](Self::max_bytes))
///   is [`LoadError::TooLarge`];
/// - the parts read from the zip (the document, its relationships and core properties) are
///   decompressed to at most the cap in all, whatever sizes the zip declares: past it (a
///   zip bomb) the load stops and is [`LoadError::DecompressedTooLarge`];
/// - an encrypted file (Word saves those as an OLE compound file, not a zip) or an
///   encrypted zip entry is [`LoadError::Encrypted`] or [`LoadError::Malformed`];
/// - a file that is not a zip, lacks the document part or whose XML does not parse is
///   [`LoadError::Malformed`];
/// - reading takes time and memory proportional to the decompressed parts, whatever the
///   structure (tables nested however deep are not copied once per level).
///
/// ```no_run
/// use catena_core::loader::{DocumentLoader, DocxLoader};
///
/// let doc = &DocxLoader::new("memo.docx").max_bytes(4 << 20).load()?[0];
/// assert_eq!(doc.source(), Some("memo.docx"));
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocxLoader {
    path: PathBuf,
    max_bytes: u64,
}

impl DocxLoader {
    /// A loader for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DocxLoader {
            path: path.into(),
            max_bytes: DEFAULT_MAX_FILE_BYTES,
        }
    }

    /// The most bytes read from the file, and the most decompressed from it in all.
    /// Default [`DEFAULT_MAX_FILE_BYTES`].
    #[must_use]
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DocumentLoader for DocxLoader {
    fn load(&self) -> crate::Result<Vec<Document>> {
        let bytes = read_bytes_capped(&self.path, self.max_bytes)?;
        let (text, title) = docx_text(&self.path, bytes, self.max_bytes)?;
        let mut doc = Document::new(text).with_metadata("source", source_of(&self.path));
        if let Some(title) = title {
            doc = doc.with_metadata("title", title);
        }
        Ok(vec![doc])
    }
}

fn malformed(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Malformed {
        path: path.to_path_buf(),
        format: FORMAT,
        message: message.into(),
    }
}

/// The body text and the core-properties title of the DOCX in `bytes`.
fn docx_text(path: &Path, bytes: Vec<u8>, max: u64) -> Result<(String, Option<String>), LoadError> {
    // Word's encrypted documents are OLE compound files (so are legacy .doc files).
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Err(LoadError::Encrypted {
            path: path.to_path_buf(),
        });
    }
    let mut zip = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| malformed(path, format!("not a zip archive: {e}")))?;
    let mut parts = Parts {
        path,
        zip: &mut zip,
        budget: max,
        max,
    };
    let main = match parts.read("_rels/.rels")? {
        Some(rels) => main_part(&rels).map_err(|m| malformed(path, m))?,
        None => None,
    }
    .unwrap_or_else(|| DEFAULT_MAIN_PART.to_owned());
    let body = parts
        .read(&main)?
        .ok_or_else(|| malformed(path, format!("no `{main}` part")))?;
    let text = body_text(&body).map_err(|m| malformed(path, format!("`{main}`: {m}")))?;
    let title = match parts.read("docProps/core.xml")? {
        Some(core) => {
            core_title(&core).map_err(|m| malformed(path, format!("`docProps/core.xml`: {m}")))?
        }
        None => None,
    };
    Ok((text, title))
}

/// Reads zip parts against one decompression budget.
struct Parts<'a> {
    path: &'a Path,
    zip: &'a mut ZipArchive<Cursor<Vec<u8>>>,
    budget: u64,
    max: u64,
}

impl Parts<'_> {
    /// The part `name` as UTF-8 text, `None` when the zip has no such entry. Reads at most
    /// the remaining budget (the declared size is not trusted).
    fn read(&mut self, name: &str) -> Result<Option<String>, LoadError> {
        let file = match self.zip.by_name(name) {
            Ok(file) => file,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(ZipError::UnsupportedArchive(ZipError::PASSWORD_REQUIRED)) => {
                return Err(LoadError::Encrypted {
                    path: self.path.to_path_buf(),
                })
            }
            Err(e) => return Err(malformed(self.path, format!("`{name}`: {e}"))),
        };
        let too_large = || LoadError::DecompressedTooLarge {
            path: self.path.to_path_buf(),
            max: self.max,
        };
        if file.size() > self.budget {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        file.take(self.budget.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| malformed(self.path, format!("`{name}`: {e}")))?;
        let read = bytes.len() as u64;
        if read > self.budget {
            return Err(too_large());
        }
        self.budget -= read;
        let text = String::from_utf8(bytes)
            .map_err(|_| malformed(self.path, format!("`{name}` is not UTF-8 XML")))?;
        Ok(Some(text))
    }
}

fn local(e: &BytesStart<'_>) -> String {
    e.local_name().as_ref().to_owned()
}

/// The text a general reference (`&amp;`, `&#x41;`) stands for.
fn reference(r: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    quick_xml::escape::resolve_predefined_entity(r)
        .map(str::to_owned)
        .ok_or_else(|| format!("unknown entity `&{};`", &**r))
}

/// The target of the officeDocument relationship in `_rels/.rels`, as a zip entry name.
fn main_part(rels: &str) -> Result<Option<String>, String> {
    let mut reader = Reader::from_str(rels);
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "Relationship" => {
                let mut kind = None;
                let mut target = None;
                for attr in e.attributes() {
                    let attr = attr.map_err(|e| e.to_string())?;
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?
                        .into_owned();
                    match attr.key.local_name().as_ref() {
                        "Type" => kind = Some(value),
                        "Target" => target = Some(value),
                        _ => {}
                    }
                }
                if kind.as_deref() == Some(OFFICE_DOCUMENT_REL) {
                    return Ok(target.map(|t| t.trim_start_matches('/').to_owned()));
                }
            }
            Event::Eof => return Ok(None),
            _ => {}
        }
    }
}

/// `dc:title` of the core properties, when non-empty.
fn core_title(core: &str) -> Result<Option<String>, String> {
    let mut reader = Reader::from_str(core);
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) if e.local_name().as_ref() == "title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == "title" => break,
            Event::Text(t) if in_title => title.push_str(&t.xml10_content()),
            Event::CData(t) if in_title => title.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_title => title.push_str(&reference(&r)?),
            Event::Eof => break,
            _ => {}
        }
    }
    let title = title.trim();
    Ok((!title.is_empty()).then(|| title.to_owned()))
}

/// A top-level table being read: finished rows, the current row's cells, the current cell.
#[derive(Default)]
struct Table {
    rows: Vec<String>,
    cells: Vec<String>,
    cell: String,
}

/// A table inside a table's cell, written straight into the top-level table's current cell
/// as it is read: its cells and rows separated by spaces (the tab-separated rows of a nested
/// table, with tabs and line breaks as spaces, read as one run of text in the enclosing
/// cell). Nothing is copied when it ends, so nesting costs no more than the text inside it,
/// however deep. The positions are byte offsets into the top-level cell.
struct Nested {
    /// Where the table starts: before the space separating it from the cell's text before it.
    start: usize,
    /// Where the current row starts.
    row: usize,
    /// Where the current cell starts.
    cell: usize,
    /// Whether a cell of the current row has text.
    row_has_text: bool,
    /// Whether a row was kept (rows without text are left out).
    has_rows: bool,
}

/// Collects the body text: paragraphs as blocks, tables as blocks of rows.
#[derive(Default)]
struct Body {
    blocks: Vec<String>,
    paragraph: String,
    /// The table being read, when the body is inside one.
    table: Option<Table>,
    /// The tables open inside it, innermost last.
    nested: Vec<Nested>,
}

/// Shortens `s` to `len` bytes, when that is shorter and on a character boundary (the
/// lengths recorded in [`Nested`] always are).
fn cut(s: &mut String, len: usize) {
    if len < s.len() && s.is_char_boundary(len) {
        s.truncate(len);
    }
}

impl Body {
    fn end_paragraph(&mut self) {
        let paragraph = std::mem::take(&mut self.paragraph);
        let paragraph = paragraph.trim_end();
        let Some(table) = &mut self.table else {
            if !paragraph.trim().is_empty() {
                self.blocks.push(paragraph.to_owned());
            }
            return;
        };
        // Paragraphs inside a cell stay on the row's line (a non-empty `paragraph` has
        // text: its trailing whitespace is gone).
        if paragraph.is_empty() {
            return;
        }
        let cell_start = self.nested.last().map_or(0, |n| n.cell);
        if table.cell.len() > cell_start {
            table.cell.push(' ');
        }
        if self.nested.is_empty() {
            table.cell.push_str(paragraph);
        } else {
            table.cell.extend(paragraph.chars().map(|c| {
                if matches!(c, '\n' | '\t') {
                    ' '
                } else {
                    c
                }
            }));
        }
    }

    fn start_table(&mut self) {
        let Some(table) = &mut self.table else {
            self.table = Some(Table::default());
            return;
        };
        let cell = &mut table.cell;
        let start = cell.len();
        // Separated from the cell's text before it; the space goes again if the table
        // turns out empty.
        if cell.len() > self.nested.last().map_or(0, |n| n.cell) {
            cell.push(' ');
        }
        self.nested.push(Nested {
            start,
            row: cell.len(),
            cell: cell.len(),
            row_has_text: false,
            has_rows: false,
        });
    }

    fn end_cell(&mut self) {
        let Some(table) = &mut self.table else {
            return;
        };
        match self.nested.last_mut() {
            Some(nested) => {
                // A cell has text exactly when something was written in it: paragraphs
                // and tables are only written when they have some.
                nested.row_has_text |= table.cell.len() > nested.cell;
                // The separator before the next cell, or the next row once the row ends.
                table.cell.push(' ');
                nested.cell = table.cell.len();
            }
            None => {
                let cell = std::mem::take(&mut table.cell);
                table.cells.push(cell);
            }
        }
    }

    fn end_row(&mut self) {
        if self
            .nested
            .last()
            .is_some_and(|n| self.table.as_ref().is_some_and(|t| t.cell.len() > n.cell))
        {
            // Text after the row's last cell (not well-formed): a cell of its own.
            self.end_cell();
        }
        let Some(table) = &mut self.table else {
            return;
        };
        match self.nested.last_mut() {
            Some(nested) => {
                if nested.row_has_text {
                    nested.has_rows = true;
                } else {
                    cut(&mut table.cell, nested.row);
                }
                nested.row = table.cell.len();
                nested.cell = table.cell.len();
                nested.row_has_text = false;
            }
            None => {
                let cells = std::mem::take(&mut table.cells);
                if cells.iter().any(|c| !c.trim().is_empty()) {
                    table.rows.push(cells.join("\t"));
                }
            }
        }
    }

    fn end_table(&mut self) {
        if let Some(nested) = self.nested.pop() {
            let Some(table) = &mut self.table else {
                return;
            };
            let cell = &mut table.cell;
            // A row not ended is left out, as in a top-level table.
            cut(cell, nested.row);
            if nested.has_rows {
                // The separator after the last row.
                if cell.ends_with(' ') {
                    cell.pop();
                }
            } else {
                cut(cell, nested.start);
            }
            return;
        }
        let Some(table) = self.table.take() else {
            return;
        };
        let text = table.rows.join("\n");
        if !text.is_empty() {
            self.blocks.push(text);
        }
    }
}

/// The text of a WordprocessingML body part.
fn body_text(xml: &str) -> Result<String, String> {
    let mut reader = Reader::from_str(xml);
    let mut body = Body::default();
    // Inside a `w:t` (text), and how deep inside skipped subtrees (deleted text, field
    // instructions, the fallback branch of alternate content).
    let mut in_text = false;
    let mut skip_depth = 0usize;
    // Open elements: a part cut short (a truncated entry) is an error, not a shorter text.
    let mut open = 0usize;
    loop {
        let event = reader.read_event().map_err(|e| e.to_string())?;
        match &event {
            Event::Start(_) => open += 1,
            Event::End(_) => open = open.saturating_sub(1),
            Event::Eof if open > 0 => return Err("the XML ends inside an element".to_owned()),
            _ => {}
        }
        match event {
            Event::Start(e) => {
                let name = local(&e);
                if skip_depth > 0 || matches!(name.as_str(), "delText" | "instrText" | "Fallback") {
                    skip_depth += 1;
                    continue;
                }
                match name.as_str() {
                    "t" => in_text = true,
                    "tbl" => body.start_table(),
                    _ => {}
                }
            }
            Event::End(e) => {
                if skip_depth > 0 {
                    skip_depth -= 1;
                    continue;
                }
                match e.local_name().as_ref() {
                    "t" => in_text = false,
                    "p" => body.end_paragraph(),
                    "tc" => {
                        body.end_paragraph();
                        body.end_cell();
                    }
                    "tr" => body.end_row(),
                    "tbl" => body.end_table(),
                    _ => {}
                }
            }
            Event::Empty(e) if skip_depth == 0 => match e.local_name().as_ref() {
                "tab" | "ptab" => body.paragraph.push('\t'),
                "br" | "cr" => body.paragraph.push('\n'),
                "noBreakHyphen" => body.paragraph.push('-'),
                "p" => body.end_paragraph(),
                "tc" => body.end_cell(),
                _ => {}
            },
            Event::Text(t) if in_text && skip_depth == 0 => {
                body.paragraph.push_str(&t.xml10_content());
            }
            Event::CData(t) if in_text && skip_depth == 0 => {
                body.paragraph.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) if in_text && skip_depth == 0 => {
                body.paragraph.push_str(&reference(&r)?);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    // Text after the last paragraph mark (not well-formed WordprocessingML, but kept).
    body.end_paragraph();
    while body.table.is_some() {
        body.end_table();
    }
    Ok(body.blocks.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main""#;

    fn body(inner: &str) -> String {
        format!(r#"<?xml version="1.0"?><w:document {W}><w:body>{inner}</w:body></w:document>"#)
    }

    #[test]
    fn paragraphs_runs_tabs_and_breaks() {
        let xml = body(
            "<w:p><w:pPr><w:pStyle w:val=\"Heading1\"/></w:pPr><w:r><w:t>Title</w:t></w:r></w:p>\
             <w:p><w:r><w:t xml:space=\"preserve\">Fish &amp; </w:t></w:r><w:r><w:t>chips</w:t><w:tab/><w:t>&#163;5</w:t><w:br/><w:t>next</w:t></w:r></w:p>\
             <w:p/><w:p><w:r><w:t>  </w:t></w:r></w:p>\
             <w:p><w:r><w:delText>gone</w:delText><w:instrText>PAGE</w:instrText><w:t>kept</w:t></w:r></w:p>",
        );
        assert_eq!(
            body_text(&xml).unwrap(),
            "Title\n\nFish & chips\t£5\nnext\n\nkept"
        );
    }

    #[test]
    fn tables_are_rows_of_tab_separated_cells() {
        let cell = |t: &str| format!("<w:tc><w:p><w:r><w:t>{t}</w:t></w:r></w:p></w:tc>");
        let xml = body(&format!(
            "<w:p><w:r><w:t>Before</w:t></w:r></w:p><w:tbl><w:tr>{}{}</w:tr><w:tr>{}<w:tc><w:p><w:r><w:t>two</w:t></w:r></w:p><w:p><w:r><w:t>lines</w:t></w:r></w:p></w:tc></w:tr></w:tbl><w:p><w:r><w:t>After</w:t></w:r></w:p>",
            cell("a"),
            cell("b"),
            cell("c"),
        ));
        assert_eq!(
            body_text(&xml).unwrap(),
            "Before\n\na\tb\nc\ttwo lines\n\nAfter"
        );
    }

    #[test]
    fn nested_tables_are_text_of_the_enclosing_cell_even_when_not_well_formed() {
        let p = |t: &str| format!("<w:p><w:r><w:t>{t}</w:t></w:r></w:p>");
        // Text between a nested row's last cell and its end is a cell of its own; a cell
        // outside a row, and an empty nested table, leave nothing (not even a separator).
        let xml = body(&format!(
            "<w:tbl><w:tr><w:tc>{}<w:tbl><w:tr><w:tc>{}</w:tc>{}</w:tr><w:tc>{}</w:tc></w:tbl>{}<w:tbl><w:tr><w:tc/></w:tr></w:tbl></w:tc><w:tc/></w:tr></w:tbl>",
            p("a"),
            p("b"),
            p("stray"),
            p("unended"),
            p("c"),
        ));
        assert_eq!(body_text(&xml).unwrap(), "a b stray c\t");
    }

    #[test]
    fn fallback_content_is_not_duplicated() {
        let xml = body(
            "<w:p><w:r><mc:AlternateContent xmlns:mc=\"m\"><mc:Choice><w:t>box</w:t></mc:Choice><mc:Fallback><w:t>box</w:t></mc:Fallback></mc:AlternateContent></w:r></w:p>",
        );
        assert_eq!(body_text(&xml).unwrap(), "box");
    }

    #[test]
    fn bad_xml_and_unknown_entities_are_errors() {
        assert!(body_text(&body("<w:p><w:t>x</w:p>")).is_err());
        assert!(body_text(&body("<w:p><w:r><w:t>&bogus;</w:t></w:r></w:p>")).is_err());
    }

    #[test]
    fn relationships_and_title() {
        let rels = r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="/word/main.xml"/></Relationships>"#;
        assert_eq!(main_part(rels).unwrap().as_deref(), Some("word/main.xml"));
        let core = r#"<cp:coreProperties xmlns:cp="c" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title> Q3 &amp; Q4 </dc:title></cp:coreProperties>"#;
        assert_eq!(core_title(core).unwrap().as_deref(), Some("Q3 & Q4"));
        assert_eq!(core_title("<cp:coreProperties/>").unwrap(), None);
    }
}
