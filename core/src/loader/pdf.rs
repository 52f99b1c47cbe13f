//! PDF files: one document per page (feature `pdf`, pure Rust with `lopdf`).
//!
//! ```no_run
//! use catena_core::loader::{DocumentLoader, PdfLoader};
//!
//! let pages = PdfLoader::new("report.pdf").load()?;
//! for page in &pages {
//!     println!("page {} of {}: {}", page.metadata["page"], page.metadata["total_pages"], page.content);
//! }
//! # Ok::<(), catena_core::Error>(())
//! ```

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use lopdf::content::Content;
use lopdf::{DecompressError, Dictionary, Encoding, Object, ObjectId};

use super::{read_bytes_capped, source_of, DocumentLoader, LoadError};
use crate::Document;

const FORMAT: &str = "PDF";

/// Loads a PDF file as one document per page, with the page's text as content and
/// metadata `source`, `page` (1-based), `total_pages` and, when the document info names
/// one, `title`.
///
/// Text comes from the page's content stream through its fonts' encodings (the extraction
/// of `lopdf`'s `extract_text`, done here for all pages in one pass): scanned pages give
/// empty text (no OCR), the reading order is the order the text is drawn in, and a content
/// stream that stops parsing gives the text drawn before that point.
///
/// Hostile input is typed, never a panic, and bounded as follows:
/// - a file over [`max_bytes`](Self::max_bytes) ([`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES),
///   16 MiB, unless set) is [`LoadError::TooLarge`];
/// - a document with more than [`max_pages`](Self::max_pages) pages
///   ([`DEFAULT_MAX_PAGES`](Self::DEFAULT_MAX_PAGES), 10 000, unless set) is
///   [`LoadError::TooManyPages`];
/// - text extraction shares one budget of `max_bytes` across all pages: the decompressed
///   page contents, the fonts' decompressed ToUnicode CMaps (once for each font
///   dictionary), one byte for each entry of a font's encoding differences and one byte for
///   each content stream a page refers to. Past it the load is
///   [`LoadError::DecompressedTooLarge`], so extraction takes time proportional to the
///   budget and the page count, not their product;
/// - a file that needs a password is [`LoadError::Encrypted`] (one encrypted with the empty
///   user password, as many "protected" PDFs are, is read);
/// - anything that does not parse, or has no pages, is [`LoadError::Malformed`].
///
/// What is **not** bounded is memory, only limited by the byte caps:
/// - `lopdf` parses the whole file into memory before any page is read, and a parsed
///   object takes many times the bytes it is written in: about 60 times for a file dense in
///   small arrays of numbers, about 25 times for small dictionaries (measured with lopdf
///   0.47), so a file at the 16 MiB default can take around 1 GiB;
/// - the object and cross-reference streams decompressed while parsing are each limited to
///   `max_bytes` (past it the load is [`LoadError::DecompressedTooLarge`]) but not in
///   total, and the objects in them are parsed the same way: a file packed with compressed
///   object streams can take many times more;
/// - a page's content is decoded one operation at a time, but one operation takes about
///   90 times the bytes its operands are written in: a crafted page whose content is one
///   operation with millions of operands takes that much, up to about 90 times
///   `max_bytes` (about 1.4 GiB at the default), while that page is read.
///
/// The default cap is a quarter of the other loaders' to keep these multiples near a
/// gigabyte at worst (ordinary files take a small fraction of that); a larger file (often
/// one with many images) needs a larger [`max_bytes`](Self::max_bytes). To bound memory
/// whatever the file, load PDFs from untrusted sources in a process with a memory limit.
///
/// ```no_run
/// use catena_core::loader::{DocumentLoader, PdfLoader};
///
/// let pages = PdfLoader::new("scan.pdf").max_bytes(8 << 20).max_pages(500).load()?;
/// assert_eq!(pages[0].metadata["page"], 1);
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfLoader {
    path: PathBuf,
    max_bytes: u64,
    max_pages: usize,
}

impl PdfLoader {
    /// The default [`max_bytes`](Self::max_bytes): 16 MiB, a quarter of the other file
    /// loaders' [`DEFAULT_MAX_FILE_BYTES`](super::DEFAULT_MAX_FILE_BYTES), as a parsed PDF
    /// takes many times its size in memory.
    pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;
    /// The default [`max_pages`](Self::max_pages): 10 000.
    pub const DEFAULT_MAX_PAGES: usize = 10_000;

    /// A loader for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PdfLoader {
            path: path.into(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_pages: Self::DEFAULT_MAX_PAGES,
        }
    }

    /// The most bytes read from the file, the most any one stream decompresses to while
    /// the file is parsed, and the budget of the text extraction (decompressed page
    /// contents, font CMaps and encodings, in all). Default
    /// [`DEFAULT_MAX_BYTES`](Self::DEFAULT_MAX_BYTES) (16 MiB).
    #[must_use]
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// The most pages read: a document with more is [`LoadError::TooManyPages`]. Default
    /// [`DEFAULT_MAX_PAGES`](Self::DEFAULT_MAX_PAGES) (10 000).
    #[must_use]
    pub fn max_pages(mut self, max: usize) -> Self {
        self.max_pages = max;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DocumentLoader for PdfLoader {
    fn load(&self) -> crate::Result<Vec<Document>> {
        let bytes = read_bytes_capped(&self.path, self.max_bytes)?;
        // lopdf parses untrusted bytes; a bug in it must not take the caller down.
        let pages = catch_unwind(AssertUnwindSafe(|| self.pages(&bytes)))
            .unwrap_or_else(|_| Err(malformed(&self.path, "the PDF parser failed on this file")))?;
        Ok(pages)
    }
}

fn malformed(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Malformed {
        path: path.to_path_buf(),
        format: FORMAT,
        message: message.into(),
    }
}

fn over_limit(e: &lopdf::Error) -> bool {
    matches!(
        e,
        lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. })
    )
}

/// Maps a lopdf error: a decompression over the cap is [`LoadError::DecompressedTooLarge`],
/// a wrong password [`LoadError::Encrypted`], the rest [`LoadError::Malformed`].
fn map_error(path: &Path, max: u64, e: lopdf::Error) -> LoadError {
    match e {
        e if over_limit(&e) => LoadError::DecompressedTooLarge {
            path: path.to_path_buf(),
            max,
        },
        lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_) => LoadError::Encrypted {
            path: path.to_path_buf(),
        },
        other => malformed(path, other.to_string()),
    }
}

impl PdfLoader {
    fn pages(&self, bytes: &[u8]) -> Result<Vec<Document>, LoadError> {
        let path = self.path.as_path();
        let limit = usize::try_from(self.max_bytes).unwrap_or(usize::MAX);
        let doc = lopdf::Document::load_mem_with_options(
            bytes,
            lopdf::LoadOptions::with_max_decompressed_size(limit),
        )
        .map_err(|e| map_error(path, self.max_bytes, e))?;
        // Loaded without the key (a user password is needed): the objects are still ciphertext.
        if doc.trailer.has(b"Encrypt") && doc.encryption_state.is_none() {
            return Err(LoadError::Encrypted {
                path: path.to_path_buf(),
            });
        }
        // The page tree is walked once (lopdf's own extraction walks it again for every
        // page it is asked for), and no further than one page past the cap.
        let mut pages = Vec::new();
        for page in doc.page_iter() {
            if pages.len() == self.max_pages {
                return Err(LoadError::TooManyPages {
                    path: path.to_path_buf(),
                    max: self.max_pages,
                });
            }
            pages.push(page);
        }
        if pages.is_empty() {
            return Err(malformed(path, "the document has no pages"));
        }
        let total = pages.len();
        let title = info_title(&doc);
        let source = source_of(path);
        let mut extractor = Extractor {
            doc: &doc,
            path,
            max: self.max_bytes,
            budget: limit,
            encodings: HashMap::new(),
        };
        let mut out = Vec::with_capacity(total);
        for (number, page_id) in (1..).zip(pages) {
            let text = extractor.page_text(number, page_id)?;
            let mut page = Document::new(text)
                .with_metadata("source", source.clone())
                .with_metadata("page", number)
                .with_metadata("total_pages", total);
            if let Some(title) = &title {
                page = page.with_metadata("title", title.clone());
            }
            out.push(page);
        }
        Ok(out)
    }
}

/// The text extraction of `lopdf`'s `extract_text`, for each page in turn, against one
/// budget for the whole document, with each font's encoding resolved once, and only for
/// the fonts a page uses.
struct Extractor<'a> {
    doc: &'a lopdf::Document,
    path: &'a Path,
    max: u64,
    /// What is left of the budget, in bytes.
    budget: usize,
    /// The encoding of every font dictionary resolved so far, by its address in `doc`
    /// (which nothing mutates while extracting); `None` when it has no usable one.
    encodings: HashMap<*const Dictionary, Option<Encoding<'a>>>,
}

/// A page's fonts, looked up by name as its content uses them.
struct PageFonts<'a> {
    page: ObjectId,
    /// The page's resource dictionaries, nearest first, once a font is looked up.
    resources: Option<Vec<&'a Dictionary>>,
    /// The fonts looked up so far.
    by_name: HashMap<Vec<u8>, Option<*const Dictionary>>,
}

impl<'a> Extractor<'a> {
    fn too_large(&self) -> LoadError {
        LoadError::DecompressedTooLarge {
            path: self.path.to_path_buf(),
            max: self.max,
        }
    }

    fn charge(&mut self, bytes: usize) -> Result<(), LoadError> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(self.too_large()),
        }
    }

    /// The text of the page `number`. A piece that cannot be decoded (a font without a
    /// usable encoding, a content stream that does not parse) is left out and logged, as
    /// text extraction is best effort; going over the budget fails the load.
    fn page_text(&mut self, number: u32, page: ObjectId) -> Result<String, LoadError> {
        let content = self.page_content(page)?;
        let mut fonts = PageFonts {
            page,
            resources: None,
            by_name: HashMap::new(),
        };
        let mut text = String::new();
        // Where the text since the last font change starts: lopdf's line breaks look at it.
        let mut chunk = 0;
        let mut font = None;
        let mut errors = Errors::default();
        // One operation at a time: decoded, the operations take many times the bytes they
        // were written in.
        for operation in Content::decode_iter(&content) {
            let operation = match operation {
                Ok(operation) => operation,
                Err(e) => {
                    // The text before the point where the content stops parsing is kept.
                    tracing::warn!(page = number, error = %e, "PDF page content cut short");
                    break;
                }
            };
            let operands = operation.operands.as_slice();
            match operation.operator.as_str() {
                "Tf" => {
                    font = match operands.first().map(Object::as_name) {
                        Some(Ok(name)) => self.font(&mut fonts, name)?,
                        _ => None,
                    };
                    chunk = text.len();
                }
                "Tj" | "TJ" => self.show(font, operands, &mut text, &mut errors),
                // `'` is `T* Tj`, `"` is `aw ac string "`: a new line, then the string.
                "'" if font.is_some() => {
                    new_line(&mut text, chunk);
                    self.show(font, operands, &mut text, &mut errors);
                }
                "\"" if font.is_some() => {
                    new_line(&mut text, chunk);
                    self.show(
                        font,
                        operands.get(2..3).unwrap_or(&[]),
                        &mut text,
                        &mut errors,
                    );
                }
                "T*" | "ET" => new_line(&mut text, chunk),
                _ => {}
            }
        }
        if let Some(first) = errors.first {
            tracing::warn!(page = number, count = errors.count, error = %first, "PDF text left out");
        }
        text.truncate(text.trim_end().len());
        Ok(text)
    }

    /// The page's content streams, decompressed and joined with newlines (as `lopdf` does),
    /// charged to the budget; a reference to something that is not a stream counts one
    /// byte like the newline after a stream.
    fn page_content(&mut self, page: ObjectId) -> Result<Vec<u8>, LoadError> {
        let mut content = Vec::new();
        for id in self.doc.get_page_contents(page) {
            self.charge(1)?;
            let Ok(stream) = self.doc.get_object(id).and_then(Object::as_stream) else {
                continue;
            };
            match stream.decompressed_content_with_limit(self.budget) {
                Ok(data) => {
                    self.charge(data.len())?;
                    content.extend_from_slice(&data);
                }
                Err(e) if over_limit(&e) => return Err(self.too_large()),
                // Not decodable: the raw bytes, as lopdf does.
                Err(_) => {
                    self.charge(stream.content.len())?;
                    content.extend_from_slice(&stream.content);
                }
            }
            content.push(b'\n');
        }
        Ok(content)
    }

    /// The font `name` of the page, when it has one with a usable encoding.
    fn font(
        &mut self,
        fonts: &mut PageFonts<'a>,
        name: &[u8],
    ) -> Result<Option<*const Dictionary>, LoadError> {
        if let Some(found) = fonts.by_name.get(name) {
            return Ok(*found);
        }
        let doc = self.doc;
        let resources = fonts.resources.get_or_insert_with(|| {
            // As lopdf's `get_page_fonts`: the nearest resources written in the page tree,
            // then those referred to, nearest first.
            match doc.get_page_resources(fonts.page) {
                Ok((inline, ids)) => inline
                    .into_iter()
                    .chain(ids.into_iter().filter_map(|id| doc.get_dictionary(id).ok()))
                    .collect(),
                Err(_) => Vec::new(),
            }
        });
        let dictionary = resources.iter().find_map(|resources| {
            let fonts = match resources.get(b"Font").ok()? {
                Object::Reference(id) => doc.get_object(*id).and_then(Object::as_dict).ok()?,
                Object::Dictionary(fonts) => fonts,
                _ => return None,
            };
            match fonts.get(name).ok()? {
                Object::Reference(id) => doc.get_dictionary(*id).ok(),
                Object::Dictionary(font) => Some(font),
                _ => None,
            }
        });
        let found = match dictionary {
            Some(font) if self.resolve(font)? => Some(std::ptr::from_ref(font)),
            _ => None,
        };
        fonts.by_name.insert(name.to_vec(), found);
        Ok(found)
    }

    /// Resolves the encoding of `font` once, charging what it decodes; whether it has a
    /// usable one.
    fn resolve(&mut self, font: &'a Dictionary) -> Result<bool, LoadError> {
        let key = std::ptr::from_ref(font);
        if let Some(encoding) = self.encodings.get(&key) {
            return Ok(encoding.is_some());
        }
        let doc = self.doc;
        let differences = font
            .get_deref(b"Encoding", doc)
            .and_then(Object::as_dict)
            .and_then(|encoding| encoding.get(b"Differences"))
            .and_then(Object::as_array)
            .map_or(0, Vec::len);
        self.charge(differences)?;
        let limit = self.budget;
        if let Ok(cmap) = font
            .get_deref(b"ToUnicode", doc)
            .and_then(Object::as_stream)
        {
            // lopdf decodes it without saying how large it was: measured here.
            match cmap.get_plain_content_with_limit(limit) {
                Ok(bytes) => self.charge(bytes.len())?,
                Err(e) if over_limit(&e) => return Err(self.too_large()),
                Err(_) => {}
            }
        }
        let encoding = match font.get_font_encoding_with_limit(doc, limit) {
            Ok(encoding) => Some(encoding),
            Err(e) if over_limit(&e) => return Err(self.too_large()),
            Err(e) => {
                tracing::warn!(error = %e, "PDF font without a usable encoding");
                None
            }
        };
        let usable = encoding.is_some();
        self.encodings.insert(key, encoding);
        Ok(usable)
    }

    /// Appends the text of the strings in `operands` drawn in `font` (as lopdf's
    /// `collect_text`).
    fn show(
        &self,
        font: Option<*const Dictionary>,
        operands: &[Object],
        text: &mut String,
        errors: &mut Errors,
    ) {
        let Some(encoding) = font
            .and_then(|f| self.encodings.get(&f))
            .and_then(Option::as_ref)
        else {
            return;
        };
        if let Err(e) = collect_text(text, encoding, operands) {
            errors.count += 1;
            errors.first.get_or_insert(e);
        }
    }
}

/// The text errors of a page, logged once for the page.
#[derive(Default)]
struct Errors {
    count: usize,
    first: Option<lopdf::Error>,
}

/// lopdf's line break: a newline unless the text since the last font change ends with one.
fn new_line(text: &mut String, chunk: usize) {
    if !text.get(chunk..).is_some_and(|t| t.ends_with('\n')) {
        text.push('\n');
    }
}

/// The strings of a text operation, decoded; a large negative adjustment in a `TJ` array
/// (and the end of the array) as a space.
fn collect_text(
    text: &mut String,
    encoding: &Encoding<'_>,
    operands: &[Object],
) -> lopdf::Result<()> {
    for operand in operands {
        match operand {
            Object::String(bytes, _) => encoding.write_to_string(bytes, text)?,
            Object::Array(array) => {
                collect_text(text, encoding, array)?;
                text.push(' ');
            }
            Object::Integer(i) if *i < -100 => text.push(' '),
            _ => {}
        }
    }
    Ok(())
}

/// The `Title` of the document information dictionary, when it has a non-empty one.
fn info_title(doc: &lopdf::Document) -> Option<String> {
    let info = match doc.trailer.get(b"Info").ok()? {
        Object::Reference(id) => doc.get_dictionary(*id).ok()?,
        Object::Dictionary(d) => d,
        _ => return None,
    };
    let title = match info.get(b"Title").ok()? {
        Object::Reference(id) => doc.get_object(*id).ok()?,
        other => other,
    };
    let title = lopdf::decode_text_string(title).ok()?;
    let title = title.trim();
    (!title.is_empty()).then(|| title.to_owned())
}
