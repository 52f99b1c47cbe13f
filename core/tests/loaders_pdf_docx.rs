//! The PDF and DOCX loaders on files built here (lopdf's document API, the zip crate), on a
//! real PDF when the machine has one, and on hostile input: caps, bombs, encryption,
//! truncations and corruptions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use catena_core::loader::{DirectoryLoader, DocumentLoader, DocxLoader, LoadError, PdfLoader};
use catena_core::{Document, Error};
use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Object, Stream};
use proptest::prelude::*;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// The content stream showing `lines` one under the other in font F1.
fn page_content(lines: &[&str]) -> Vec<u8> {
    let mut ops = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 12.into()]),
        Operation::new("TL", vec![14.into()]),
        Operation::new("Td", vec![72.into(), 720.into()]),
    ];
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            ops.push(Operation::new("T*", vec![]));
        }
        ops.push(Operation::new("Tj", vec![Object::string_literal(*line)]));
    }
    ops.push(Operation::new("ET", vec![]));
    Content { operations: ops }.encode().unwrap()
}

/// A PDF document with one page per content stream, streams compressed.
fn pdf_document(contents: Vec<Vec<u8>>, title: Option<&str>) -> lopdf::Document {
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::new();
    for content in contents {
        let mut stream = Stream::new(dictionary! {}, content);
        stream.compress().unwrap();
        let content_id = doc.add_object(stream);
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    if let Some(title) = title {
        let info_id = doc.add_object(dictionary! {
            "Title" => Object::string_literal(title),
        });
        doc.trailer.set("Info", info_id);
    }
    doc
}

fn save(mut doc: lopdf::Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn three_page_pdf() -> Vec<u8> {
    save(pdf_document(
        vec![
            page_content(&["Chapter one", "Cats purr."]),
            page_content(&[]),
            page_content(&["Chapter three"]),
        ],
        Some("A Small Book"),
    ))
}

const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main""#;

fn document_xml(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {W}><w:body>{body}</w:body></w:document>"#
    )
}

fn para(text: &str) -> String {
    format!("<w:p><w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>")
}

/// A DOCX package with the given parts (name, content), deflated.
fn docx_with(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, content) in parts {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
const RELS: &str = r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;
const CORE: &str = r#"<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Staff Handbook</dc:title><dc:creator>HR</dc:creator></cp:coreProperties>"#;

fn sample_docx() -> Vec<u8> {
    let body = format!(
        "<w:p><w:pPr><w:pStyle w:val=\"Heading1\"/></w:pPr><w:r><w:t>Leave</w:t></w:r></w:p>{}\
         <w:tbl><w:tr><w:tc>{}</w:tc><w:tc>{}</w:tc></w:tr><w:tr><w:tc>{}</w:tc><w:tc>{}</w:tc></w:tr></w:tbl>{}",
        para("Staff get 25 days &amp; public holidays."),
        para("Grade"),
        para("Days"),
        para("Senior"),
        para("30"),
        para("Ask your manager."),
    );
    docx_with(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", RELS.as_bytes()),
        ("docProps/core.xml", CORE.as_bytes()),
        ("word/document.xml", document_xml(&body).as_bytes()),
    ])
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load_error(result: catena_core::Result<Vec<Document>>) -> LoadError {
    match result {
        Err(Error::Load(e)) => e,
        Err(other) => panic!("expected a load error, got {other:?}"),
        Ok(docs) => panic!("expected a load error, got {} documents", docs.len()),
    }
}

// ---------------------------------------------------------------------------------------
// PDF
// ---------------------------------------------------------------------------------------

#[test]
fn pdf_has_one_document_per_page_with_page_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "book.pdf", &three_page_pdf());
    let docs = PdfLoader::new(&path).load().unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0].content, "Chapter one\nCats purr.");
    assert_eq!(docs[1].content, "");
    assert_eq!(docs[2].content, "Chapter three");
    for (i, doc) in docs.iter().enumerate() {
        assert_eq!(doc.metadata["page"], i as u64 + 1);
        assert_eq!(doc.metadata["total_pages"], 3);
        assert_eq!(doc.metadata["title"], "A Small Book");
        assert_eq!(doc.source(), Some(path.to_str().unwrap()));
    }
}

#[test]
fn pdf_over_the_file_cap_is_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = three_page_pdf();
    let path = write(dir.path(), "book.pdf", &bytes);
    let max = bytes.len() as u64 - 1;
    match load_error(PdfLoader::new(&path).max_bytes(max).load()) {
        LoadError::TooLarge { size, max: m, .. } => {
            assert_eq!(size, Some(bytes.len() as u64));
            assert_eq!(m, max);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pdf_decompression_bomb_stops_at_the_cap() {
    // A 4 MiB content stream (compressed to a few KiB) against a 1 MiB cap.
    let mut content = page_content(&["boom"]);
    content.extend(std::iter::repeat_n(b' ', 4 << 20));
    let bytes = save(pdf_document(vec![content], None));
    assert!(bytes.len() < 64 << 10, "{} bytes", bytes.len());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bomb.pdf", &bytes);
    match load_error(PdfLoader::new(&path).max_bytes(1 << 20).load()) {
        LoadError::DecompressedTooLarge { max, .. } => assert_eq!(max, 1 << 20),
        other => panic!("{other:?}"),
    }
    // The same file under the default cap (16 MiB) loads.
    assert_eq!(PdfLoader::new(&path).load().unwrap()[0].content, "boom");
}

#[test]
fn pdf_page_contents_share_one_decompression_budget() {
    // Three pages of 400 KiB each: every page is under the 1 MiB cap, together they are not.
    let page = || {
        let mut content = page_content(&["page"]);
        content.extend(std::iter::repeat_n(b' ', 400 << 10));
        content
    };
    let bytes = save(pdf_document(vec![page(), page(), page()], None));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "big.pdf", &bytes);
    assert!(matches!(
        load_error(PdfLoader::new(&path).max_bytes(1 << 20).load()),
        LoadError::DecompressedTooLarge { .. }
    ));
    assert_eq!(
        PdfLoader::new(&path)
            .max_bytes(2 << 20)
            .load()
            .unwrap()
            .len(),
        3
    );
}

fn encrypted_pdf(user_password: &str) -> Vec<u8> {
    let mut doc = pdf_document(vec![page_content(&["Top secret"])], None);
    // An encrypted file needs an ID.
    doc.trailer.set(
        "ID",
        vec![
            Object::string_literal(b"0123456789abcdef".to_vec()),
            Object::string_literal(b"0123456789abcdef".to_vec()),
        ],
    );
    let version = lopdf::EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner",
        user_password,
        key_length: 128,
        permissions: lopdf::Permissions::all(),
    };
    let state = lopdf::EncryptionState::try_from(version).unwrap();
    doc.encrypt(&state).unwrap();
    save(doc)
}

#[test]
fn pdf_needing_a_password_is_encrypted_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "locked.pdf", &encrypted_pdf("secret"));
    let e = load_error(PdfLoader::new(&path).load());
    assert!(matches!(e, LoadError::Encrypted { .. }), "{e:?}");
    assert!(e.to_string().contains("locked.pdf"), "{e}");
}

#[test]
fn pdf_encrypted_with_the_empty_user_password_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "open.pdf", &encrypted_pdf(""));
    let docs = PdfLoader::new(&path).load().unwrap();
    assert_eq!(docs[0].content, "Top secret");
}

#[test]
fn pdf_that_is_not_a_pdf_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("empty.pdf", &b""[..]),
        ("text.pdf", b"hello, I am not a PDF"),
        ("header.pdf", b"%PDF-1.7\n%%EOF\n"),
    ] {
        let path = write(dir.path(), name, bytes);
        let e = load_error(PdfLoader::new(&path).load());
        match &e {
            LoadError::Malformed { format, .. } => assert_eq!(*format, "PDF"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn pdf_truncations_are_errors_or_text_never_panics() {
    let bytes = three_page_pdf();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.pdf");
    // Every cut of the file: lenient parsing recovers some; none may panic or invent pages.
    for cut in (0..bytes.len()).step_by(7) {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        match PdfLoader::new(&path).load() {
            Ok(docs) => assert!(docs.len() <= 3, "cut {cut}: {} pages", docs.len()),
            Err(Error::Load(_)) => {}
            Err(other) => panic!("cut {cut}: {other:?}"),
        }
    }
}

/// A real-world PDF shipped by a Debian package, when installed.
#[test]
fn pdf_from_a_debian_package_when_present() {
    let path = Path::new("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf");
    if !path.exists() {
        eprintln!("skipped: {} is not installed", path.display());
        return;
    }
    let docs = PdfLoader::new(path).load().unwrap();
    assert!(docs.len() > 5, "{} pages", docs.len());
    let total = docs.len() as u64;
    for (i, doc) in docs.iter().enumerate() {
        assert_eq!(doc.metadata["page"], i as u64 + 1);
        assert_eq!(doc.metadata["total_pages"], total);
    }
    let first = &docs[0].content;
    assert!(
        first.starts_with("Shared MIME-info Database") && first.contains("1. Introduction"),
        "{first}"
    );
    assert!(docs[2].content.contains("update-mime-database"));
}

// Denial of service: work per page must not grow with the page count, and everything the
// text extraction decodes (page contents, font CMaps and encodings) shares one budget.

fn compressed(content: Vec<u8>) -> Stream {
    let mut stream = Stream::new(dictionary! {}, content);
    stream.compress().unwrap();
    stream
}

/// A PDF of `n` pages under one flat page tree, page `i` being the dictionary `page(doc, i)`
/// makes (the builder adds `Type` and `Parent`).
fn pdf_of_pages(
    n: usize,
    mut page: impl FnMut(&mut lopdf::Document, usize) -> lopdf::Dictionary,
) -> Vec<u8> {
    let mut doc = lopdf::Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let mut kids: Vec<Object> = Vec::with_capacity(n);
    for i in 0..n {
        let mut dict = page(&mut doc, i);
        dict.set("Type", "Page");
        dict.set("Parent", pages_id);
        kids.push(doc.add_object(dict).into());
    }
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => n as i64,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    save(doc)
}

/// `n` pages that each show `p`, sharing one content stream and one font.
fn uniform_pdf(n: usize) -> Vec<u8> {
    let mut shared = None;
    pdf_of_pages(n, |doc, _| {
        let (content_id, resources_id) = *shared.get_or_insert_with(|| {
            let font_id = doc.add_object(dictionary! {
                "Type" => "Font",
                "Subtype" => "Type1",
                "BaseFont" => "Helvetica",
                "Encoding" => "WinAnsiEncoding",
            });
            let resources_id = doc.add_object(dictionary! {
                "Font" => dictionary! { "F1" => font_id },
            });
            (
                doc.add_object(compressed(page_content(&["p"]))),
                resources_id,
            )
        });
        dictionary! { "Contents" => content_id, "Resources" => resources_id }
    })
}

#[test]
fn pdf_with_more_pages_than_max_pages_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "long.pdf", &uniform_pdf(10_001));
    match load_error(PdfLoader::new(&path).load()) {
        LoadError::TooManyPages { max, .. } => assert_eq!(max, 10_000),
        other => panic!("{other:?}"),
    }
    let book = write(dir.path(), "book.pdf", &three_page_pdf());
    let e = load_error(PdfLoader::new(&book).max_pages(2).load());
    assert!(matches!(e, LoadError::TooManyPages { max: 2, .. }), "{e:?}");
    assert!(e.to_string().contains("book.pdf"), "{e}");
    assert_eq!(PdfLoader::new(&book).max_pages(3).load().unwrap().len(), 3);
}

/// Extraction used to walk the whole page tree once per page: hours for a file of empty
/// pages. It is linear now.
#[test]
fn pdf_with_many_pages_loads_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "long.pdf", &uniform_pdf(20_000));
    let docs = PdfLoader::new(&path).max_pages(20_000).load().unwrap();
    assert_eq!(docs.len(), 20_000);
    let last = &docs[19_999];
    assert_eq!(last.content, "p");
    assert_eq!(last.metadata["page"], 20_000);
    assert_eq!(last.metadata["total_pages"], 20_000);
}

/// Every page shares one resources dictionary naming 50 000 fonts: resolving all of them on
/// every page was quadratic; only the fonts a page uses are resolved now.
#[test]
fn pdf_large_shared_font_resources_are_not_walked_per_page() {
    let mut shared = None;
    let bytes = pdf_of_pages(2_000, |doc, _| {
        let (content_id, resources_id) = *shared.get_or_insert_with(|| {
            let font_id = doc.add_object(dictionary! {
                "Type" => "Font",
                "Subtype" => "Type1",
                "BaseFont" => "Helvetica",
                "Encoding" => "WinAnsiEncoding",
            });
            let mut fonts = lopdf::Dictionary::new();
            for i in 0..50_000 {
                fonts.set(format!("F{i}"), font_id);
            }
            let resources_id = doc.add_object(dictionary! { "Font" => fonts });
            (
                doc.add_object(compressed(page_content(&["p"]))),
                resources_id,
            )
        });
        dictionary! { "Contents" => content_id, "Resources" => resources_id }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "fonts.pdf", &bytes);
    let docs = PdfLoader::new(&path).load().unwrap();
    assert_eq!(docs.len(), 2_000);
    assert!(docs.iter().all(|d| d.content == "p"));
}

/// A ToUnicode CMap mapping `A` to `B`, padded with `padding` bytes of comment.
fn padded_cmap(padding: usize) -> Vec<u8> {
    let comment = format!("%{}\n", "x".repeat(padding));
    format!(
        "/CIDInit /ProcSet findresource begin\n{comment}12 dict begin\nbegincmap\n\
         /CMapName /Test def\n/CMapType 2 def\n1 begincodespacerange\n<00> <FF>\nendcodespacerange\n\
         1 beginbfchar\n<41> <0042>\nendbfchar\nendcmap\n\
         CMapName currentdict /CMap defineresource pop\nend\nend\n"
    )
    .into_bytes()
}

/// Eight pages, each with a font of its own sharing one 200 KiB CMap: the CMap is
/// decompressed for every font, and each time counts against the budget.
#[test]
fn pdf_tounicode_cmaps_are_charged_to_the_decompression_budget() {
    let mut cmap = None;
    let bytes = pdf_of_pages(8, |doc, _| {
        let cmap_id =
            *cmap.get_or_insert_with(|| doc.add_object(compressed(padded_cmap(200 << 10))));
        let content_id = doc.add_object(compressed(page_content(&["A"])));
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => "Helvetica",
            "ToUnicode" => cmap_id,
        });
        dictionary! {
            "Contents" => content_id,
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
        }
    });
    assert!(bytes.len() < 64 << 10, "{} bytes", bytes.len());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "cmaps.pdf", &bytes);
    match load_error(PdfLoader::new(&path).max_bytes(1 << 20).load()) {
        LoadError::DecompressedTooLarge { max, .. } => assert_eq!(max, 1 << 20),
        other => panic!("{other:?}"),
    }
    let docs = PdfLoader::new(&path).max_bytes(4 << 20).load().unwrap();
    assert_eq!(docs.len(), 8);
    assert!(docs.iter().all(|d| d.content == "B"), "{docs:?}");
}

/// Every page's contents are one shared array of 200 000 references to something that is
/// not a stream: walking it per page was quadratic; each reference now counts as a byte.
#[test]
fn pdf_content_stream_references_are_charged_to_the_budget() {
    let mut shared = None;
    let bytes = pdf_of_pages(2_000, |doc, _| {
        let contents_id = *shared.get_or_insert_with(|| {
            let not_a_stream = doc.add_object(Object::Integer(0));
            let refs: Vec<Object> = std::iter::repeat_n(not_a_stream.into(), 200_000).collect();
            doc.add_object(refs)
        });
        dictionary! { "Contents" => contents_id }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "refs.pdf", &bytes);
    match load_error(PdfLoader::new(&path).max_bytes(2 << 20).load()) {
        LoadError::DecompressedTooLarge { max, .. } => assert_eq!(max, 2 << 20),
        other => panic!("{other:?}"),
    }
}

/// Every page has a font of its own sharing one encoding of 300 000 differences: reading
/// it for every font was quadratic; each entry now counts as a byte of the budget.
#[test]
fn pdf_font_encoding_differences_are_charged_to_the_budget() {
    let mut shared = None;
    let bytes = pdf_of_pages(2_000, |doc, _| {
        let (content_id, encoding_id) = *shared.get_or_insert_with(|| {
            let mut differences: Vec<Object> = vec![0.into()];
            differences.extend(std::iter::repeat_n(Object::Name(b"a".to_vec()), 300_000));
            let encoding_id = doc.add_object(dictionary! {
                "Type" => "Encoding",
                "Differences" => differences,
            });
            (
                doc.add_object(compressed(page_content(&["p"]))),
                encoding_id,
            )
        });
        let font_id = doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => "Helvetica",
            "Encoding" => encoding_id,
        });
        dictionary! {
            "Contents" => content_id,
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "differences.pdf", &bytes);
    match load_error(PdfLoader::new(&path).max_bytes(2 << 20).load()) {
        LoadError::DecompressedTooLarge { max, .. } => assert_eq!(max, 2 << 20),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// DOCX
// ---------------------------------------------------------------------------------------

#[test]
fn docx_is_one_document_with_paragraphs_tables_and_title() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "handbook.docx", &sample_docx());
    let docs = DocxLoader::new(&path).load().unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0].content,
        "Leave\n\nStaff get 25 days & public holidays.\n\nGrade\tDays\nSenior\t30\n\nAsk your manager."
    );
    assert_eq!(docs[0].metadata["title"], "Staff Handbook");
    assert_eq!(docs[0].source(), Some(path.to_str().unwrap()));
}

#[test]
fn docx_main_part_follows_the_package_relationship_and_title_is_optional() {
    let rels = RELS.replace("word/document.xml", "/word/body.xml");
    let bytes = docx_with(&[
        ("_rels/.rels", rels.as_bytes()),
        ("word/body.xml", document_xml(&para("moved")).as_bytes()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "moved.docx", &bytes);
    let docs = DocxLoader::new(&path).load().unwrap();
    assert_eq!(docs[0].content, "moved");
    assert!(!docs[0].metadata.contains_key("title"));
}

#[test]
fn docx_zip_bomb_stops_at_the_cap() {
    // document.xml inflates to 2 MiB from a few KiB; the cap is 1 MiB.
    let filler = format!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", "a".repeat(2 << 20));
    let bytes = docx_with(&[("word/document.xml", document_xml(&filler).as_bytes())]);
    assert!(bytes.len() < 64 << 10, "{} bytes", bytes.len());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bomb.docx", &bytes);
    match load_error(DocxLoader::new(&path).max_bytes(1 << 20).load()) {
        LoadError::DecompressedTooLarge { max, .. } => assert_eq!(max, 1 << 20),
        other => panic!("{other:?}"),
    }
}

/// Sets every declared uncompressed size of the zip's one entry to `size` (in the local
/// header and the central directory), as a bomb that lies about its size would.
fn lie_about_sizes(zip: &mut [u8], size: u32) {
    let patch = |zip: &mut [u8], sig: &[u8; 4], offset: usize| {
        let at = zip.windows(4).position(|w| w == sig).unwrap();
        zip[at + offset..at + offset + 4].copy_from_slice(&size.to_le_bytes());
    };
    patch(zip, b"PK\x03\x04", 22);
    patch(zip, b"PK\x01\x02", 24);
}

#[test]
fn docx_zip_bomb_with_lying_sizes_stops_at_the_cap() {
    let filler = format!("<w:p><w:r><w:t>{}</w:t></w:r></w:p>", "a".repeat(2 << 20));
    let mut bytes = docx_with(&[("word/document.xml", document_xml(&filler).as_bytes())]);
    lie_about_sizes(&mut bytes, 100);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "liar.docx", &bytes);
    let e = load_error(DocxLoader::new(&path).max_bytes(1 << 20).load());
    // The zip reader may notice the lie first; either way nothing past the cap is read.
    assert!(
        matches!(
            e,
            LoadError::DecompressedTooLarge { .. } | LoadError::Malformed { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn docx_over_the_file_cap_is_too_large() {
    let bytes = sample_docx();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "handbook.docx", &bytes);
    assert!(matches!(
        load_error(DocxLoader::new(&path).max_bytes(100).load()),
        LoadError::TooLarge { .. }
    ));
}

/// A case: file name, bytes, and the check on the error it must give.
type Case = (&'static str, Vec<u8>, fn(&LoadError) -> bool);

#[test]
fn docx_hostile_and_broken_packages_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Case> = vec![
        ("not-a-zip.docx", b"plain text".to_vec(), |e| {
            matches!(e, LoadError::Malformed { format: "DOCX", .. })
        }),
        (
            "no-document.docx",
            docx_with(&[("[Content_Types].xml", CONTENT_TYPES.as_bytes())]),
            |e| matches!(e, LoadError::Malformed { message, .. } if message.contains("word/document.xml")),
        ),
        (
            "bad-xml.docx",
            docx_with(&[("word/document.xml", b"<w:document><w:body><w:p>")]),
            |e| matches!(e, LoadError::Malformed { .. }),
        ),
        (
            "utf16.docx",
            docx_with(&[("word/document.xml", &[0xFF, 0xFE, b'<', 0])]),
            |e| matches!(e, LoadError::Malformed { .. }),
        ),
        (
            // Word's encrypted documents are OLE compound files.
            "encrypted.docx",
            [
                &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1][..],
                &[0; 504],
            ]
            .concat(),
            |e| matches!(e, LoadError::Encrypted { .. }),
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = write(dir.path(), name, &bytes);
        let e = load_error(DocxLoader::new(&path).load());
        assert!(expected(&e), "{name}: {e:?}");
        assert!(e.to_string().contains(name), "{name}: {e}");
    }
}

#[test]
fn docx_truncations_are_errors_never_panics() {
    let bytes = sample_docx();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.docx");
    for cut in (0..bytes.len()).step_by(5) {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        match DocxLoader::new(&path).load() {
            Err(Error::Load(_)) => {}
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

/// `depth` tables nested one in another's first cell, each cell starting with `L<level>`,
/// the innermost cell ending with `inner`.
fn nested_tables(depth: usize, inner: &str) -> String {
    let mut xml = String::new();
    for level in 0..depth {
        xml.push_str(&format!(
            "<w:tbl><w:tr><w:tc>{}",
            para(&format!("L{level}"))
        ));
    }
    xml.push_str(&para(inner));
    for _ in 0..depth {
        xml.push_str("</w:tc></w:tr></w:tbl>");
    }
    xml
}

/// Each level of nesting used to copy the text inside it about four times: quadratic, hours
/// for a file under the cap. Nested tables are written straight into the enclosing cell now.
#[test]
fn docx_deeply_nested_tables_load_in_linear_time() {
    let depth = 5_000;
    let inner = "x".repeat(2 << 20);
    let body = nested_tables(depth, &inner);
    let bytes = docx_with(&[("word/document.xml", document_xml(&body).as_bytes())]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nested.docx", &bytes);
    let docs = DocxLoader::new(&path).load().unwrap();
    let labels: Vec<String> = (0..depth).map(|l| format!("L{l}")).collect();
    assert!(docs[0].content == format!("{} {inner}", labels.join(" ")));
}

/// Nested tables read as before: a nested table's rows and cells become space-separated
/// text in the enclosing cell, empty rows are left out, empty cells keep their separator.
#[test]
fn docx_nested_tables_read_as_text_of_the_enclosing_cell() {
    let cell = |inner: &str| format!("<w:tc>{inner}</w:tc>");
    let row = |cells: &[String]| format!("<w:tr>{}</w:tr>", cells.concat());
    let table = |rows: &[String]| format!("<w:tbl>{}</w:tbl>", rows.concat());
    let tab_break = "<w:p><w:r><w:t>t</w:t><w:tab/><w:t>b</w:t><w:br/><w:t>r</w:t></w:r></w:p>";
    let inner = table(&[
        row(&[cell(&para("a")), cell(""), cell(&para("b"))]),
        row(&[cell(""), cell(&para(" "))]),
        row(&[cell(""), cell(tab_break)]),
    ]);
    let deeper = table(&[row(&[cell(&format!(
        "{}{}",
        para("d1"),
        table(&[row(&[cell(&para("d2")), cell(&para("d3"))])])
    ))])]);
    let empty = table(&[row(&[cell(""), cell(&para(""))])]);
    let body = table(&[
        row(&[
            cell(&format!("{}{inner}{}", para("x"), para("y"))),
            cell(&format!("{empty}{deeper}{deeper}")),
            cell(&empty),
        ]),
        row(&[cell(&inner), cell(&para("z"))]),
    ]);
    let docs_xml = document_xml(&format!("{}{body}{}", para("Before"), para("After")));
    let bytes = docx_with(&[("word/document.xml", docs_xml.as_bytes())]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "nested.docx", &bytes);
    let docs = DocxLoader::new(&path).load().unwrap();
    assert_eq!(
        docs[0].content,
        "Before\n\n\
         x a  b  t b r y\td1 d2 d3 d1 d2 d3\t\n\
         a  b  t b r\tz\n\n\
         After"
    );
}

// ---------------------------------------------------------------------------------------
// Corruption (both formats) and the directory loader
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Overwriting bytes of a valid file gives documents or a load error, never a panic.
    #[test]
    fn corrupted_files_never_panic(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        for (name, mut bytes) in [("c.pdf", three_page_pdf()), ("c.docx", sample_docx())] {
            for (at, byte) in &flips {
                let i = at.index(bytes.len());
                bytes[i] = *byte;
            }
            let path = write(dir.path(), name, &bytes);
            let result = if name.ends_with("pdf") {
                PdfLoader::new(&path).load()
            } else {
                DocxLoader::new(&path).load()
            };
            prop_assert!(matches!(result, Ok(_) | Err(Error::Load(_))), "{result:?}");
        }
    }
}

#[test]
fn directory_loader_picks_pdf_and_docx_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    write(dir.path(), "docs/book.pdf", &three_page_pdf());
    write(dir.path(), "handbook.docx", &sample_docx());
    let docs = DirectoryLoader::builder(dir.path())
        .build()
        .unwrap()
        .load()
        .unwrap();
    let summary: Vec<(Option<&str>, Option<u64>)> = docs
        .iter()
        .map(|d| (d.source(), d.metadata.get("page").and_then(|p| p.as_u64())))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some("docs/book.pdf"), Some(1)),
            (Some("docs/book.pdf"), Some(2)),
            (Some("docs/book.pdf"), Some(3)),
            (Some("handbook.docx"), None),
        ]
    );
    assert_eq!(docs[3].metadata["title"], "Staff Handbook");
}
