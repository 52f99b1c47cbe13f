#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Document loaders on committed data files and on trees written with `tempfile`.

use std::fs;
use std::path::{Path, PathBuf};

use catena_core::loader::{
    html_to_text, CsvLoader, DirectoryLoader, DocumentLoader, HtmlLoader, JsonLinesLoader,
    JsonLoader, LoadError, MarkdownLoader, RecordLocation, SkipReason, TextLoader,
};
use catena_core::{Document, Error};
use serde_json::json;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/loader")
        .join(name)
}

fn load_error(result: catena_core::Result<Vec<Document>>) -> LoadError {
    match result {
        Err(Error::Load(e)) => e,
        Err(other) => panic!("expected a load error, got {other:?}"),
        Ok(docs) => panic!("expected a load error, got {} documents", docs.len()),
    }
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn sources(docs: &[Document]) -> Vec<&str> {
    docs.iter().map(|d| d.source().unwrap()).collect()
}

#[test]
fn text_loader_reads_file_with_source() {
    let path = data("sample.txt");
    let docs = TextLoader::new(&path).load().unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0].content,
        "Rust is a systems programming language.\nIt has no garbage collector.\n"
    );
    assert_eq!(docs[0].source(), Some(path.to_str().unwrap()));
}

#[test]
fn text_loader_rejects_invalid_utf8_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    fs::write(&bad, b"ok\xff\xfe").unwrap();
    match load_error(TextLoader::new(&bad).load()) {
        LoadError::InvalidUtf8 { path, valid_up_to } => {
            assert_eq!(path, bad);
            assert_eq!(valid_up_to, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    let missing = dir.path().join("missing.txt");
    assert!(matches!(
        load_error(TextLoader::new(&missing).load()),
        LoadError::Io { path, .. } if path == missing
    ));
}

#[test]
fn text_loader_drops_bom() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.txt");
    fs::write(&path, "\u{feff}hello").unwrap();
    assert_eq!(TextLoader::new(&path).load().unwrap()[0].content, "hello");
}

#[test]
fn markdown_loader_sets_title() {
    let docs = MarkdownLoader::new(data("guide.md")).load().unwrap();
    assert_eq!(docs[0].metadata["title"], "Getting Started");
    assert!(docs[0].content.contains("## Next steps"));
}

#[test]
fn json_loader_with_pointer_and_content_key() {
    let path = data("records.json");
    let docs = JsonLoader::new(&path)
        .pointer("/data/items")
        .content_key("text")
        .load()
        .unwrap();
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0].content, "First record");
    assert_eq!(docs[0].metadata["id"], 1);
    assert_eq!(docs[0].metadata["tags"], json!(["a", "b"]));
    assert_eq!(docs[0].metadata["index"], 0);
    assert!(!docs[0].metadata.contains_key("text"));
    assert_eq!(docs[1].metadata["author"], "ada");
    assert_eq!(docs[2].content, "42", "non-string content is JSON text");
    assert_eq!(docs[2].source(), Some(path.to_str().unwrap()));

    // Without a leading slash, and without a content key: whole records as JSON.
    let whole = JsonLoader::new(&path).pointer("meta").load().unwrap();
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].content, r#"{"version":2}"#);
}

#[test]
fn json_loader_errors_name_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    fs::write(&path, r#"[{"text": "a"}, {"body": "b"}]"#).unwrap();
    match load_error(JsonLoader::new(&path).content_key("text").load()) {
        LoadError::MissingContent { location, key, .. } => {
            assert_eq!(location, RecordLocation::Index(1));
            assert_eq!(key, "text");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = load_error(JsonLoader::new(&path).content_key("text").load());
    assert_eq!(
        err.to_string(),
        format!("record 1 of `{}` has no `text` field", path.display())
    );

    assert!(matches!(
        load_error(JsonLoader::new(&path).pointer("/nope").load()),
        LoadError::PointerNotFound { pointer, .. } if pointer == "/nope"
    ));

    fs::write(&path, "[1, 2").unwrap();
    assert!(matches!(
        load_error(JsonLoader::new(&path).load()),
        LoadError::InvalidJson { line: 1, .. }
    ));

    fs::write(&path, r#"["just text"]"#).unwrap();
    assert!(matches!(
        load_error(JsonLoader::new(&path).content_key("text").load()),
        LoadError::InvalidRecord {
            location: RecordLocation::Index(0),
            ..
        }
    ));
}

#[test]
fn json_lines_loader_reads_lines_and_skips_blank_ones() {
    let docs = JsonLinesLoader::new(data("notes.jsonl"))
        .content_key("text")
        .load()
        .unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0].content, "alpha");
    assert_eq!(docs[0].metadata["lang"], "en");
    assert_eq!(docs[0].metadata["line"], 1);
    assert_eq!(docs[1].content, "beta");
    assert_eq!(docs[1].metadata["line"], 3);
}

#[test]
fn json_lines_bad_line_reports_line_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    fs::write(
        &path,
        "{\"text\": \"ok\"}\n\n{\"text\": oops}\n{\"text\": \"later\"}\n",
    )
    .unwrap();
    match load_error(JsonLinesLoader::new(&path).content_key("text").load()) {
        LoadError::InvalidJson {
            line,
            column,
            message,
            ..
        } => {
            assert_eq!(line, 3);
            assert_eq!(column, 10);
            assert!(!message.contains("at line"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    fs::write(&path, "{\"text\": \"ok\"}\n{\"other\": 1}\n").unwrap();
    assert!(matches!(
        load_error(JsonLinesLoader::new(&path).content_key("text").load()),
        LoadError::MissingContent {
            location: RecordLocation::Line(2),
            ..
        }
    ));
}

#[test]
fn csv_loader_handles_quotes_and_newlines() {
    let path = data("people.csv");
    let docs = CsvLoader::new(&path).load().unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(
        docs[0].content,
        "name: Ada Lovelace\nbio: Wrote the first program, arguably.\ncity: London"
    );
    assert_eq!(
        docs[1].content,
        "name: Grace \"Amazing\" Hopper\nbio: Line one\nline two\ncity: Arlington"
    );
    assert_eq!(docs[1].metadata["row"], 1);
    assert_eq!(docs[1].source(), Some(path.to_str().unwrap()));
    assert!(!docs[1].metadata.contains_key("city"));
}

#[test]
fn csv_loader_content_columns_and_errors() {
    let path = data("people.csv");
    let docs = CsvLoader::new(&path)
        .content_columns(["bio"])
        .load()
        .unwrap();
    assert_eq!(docs[0].content, "bio: Wrote the first program, arguably.");
    assert_eq!(docs[0].metadata["name"], "Ada Lovelace");
    assert_eq!(docs[0].metadata["city"], "London");
    assert_eq!(docs[0].metadata["row"], 0);

    assert!(matches!(
        load_error(CsvLoader::new(&path).content_columns(["nope"]).load()),
        LoadError::MissingColumn { column, .. } if column == "nope"
    ));

    let dir = tempfile::tempdir().unwrap();
    let ragged = dir.path().join("ragged.csv");
    fs::write(&ragged, "a,b\n1,2\n3\n").unwrap();
    assert!(matches!(
        load_error(CsvLoader::new(&ragged).load()),
        LoadError::Csv { line: Some(3), .. }
    ));

    let tsv = dir.path().join("t.tsv");
    fs::write(&tsv, "k\tv\nx\ty, z\n").unwrap();
    let docs = CsvLoader::new(&tsv).delimiter(b'\t').load().unwrap();
    assert_eq!(docs[0].content, "k: x\nv: y, z");
}

#[test]
fn html_loader_strips_scripts_and_decodes_entities() {
    let docs = HtmlLoader::new(data("page.html")).load().unwrap();
    let doc = &docs[0];
    assert_eq!(doc.metadata["title"], "Café & Bar — Menu");
    assert_eq!(
        doc.content,
        "Today's menu\n\nEspresso – €2 <hot>\n\nCroissant\nPain au chocolat\n\nFish & chips\nOpen daily"
    );
    assert!(!doc.content.contains("tracking"));
    assert!(!doc.content.contains("color"));
    assert!(!doc.content.contains("comment"));
}

#[test]
fn html_to_text_numeric_entities_are_data() {
    // Decoded markup characters stay text: `&lt;script&gt;` is not a script.
    assert_eq!(
        html_to_text("<p>&lt;script&gt;alert(1)&lt;/script&gt; &#60;b&#62; &#x1F980;</p>"),
        "<script>alert(1)</script> <b> 🦀"
    );
}

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "b.txt", "bee");
    write(root, "a.md", "# A\nalpha");
    write(root, "docs/guide.md", "# Guide\nguide");
    write(root, "docs/drafts/wip.md", "wip");
    write(root, "docs/page.html", "<p>Hi &amp; bye</p>");
    write(root, "data/rows.csv", "k,v\n1,2\n");
    write(root, "image.png", "not really a png");
    write(root, ".hidden/secret.txt", "hidden");
    dir
}

#[test]
fn directory_loader_walks_sorted_with_relative_sources() {
    let dir = tree();
    let report = DirectoryLoader::builder(dir.path())
        .build()
        .unwrap()
        .load_with_report()
        .unwrap();
    assert_eq!(
        sources(&report.documents),
        [
            "a.md",
            "b.txt",
            "data/rows.csv",
            "docs/drafts/wip.md",
            "docs/guide.md",
            "docs/page.html"
        ]
    );
    assert_eq!(report.documents[0].metadata["title"], "A");
    assert_eq!(report.documents[5].content, "Hi & bye");
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].path, "image.png");
    assert_eq!(report.skipped[0].reason, SkipReason::NoLoader);
}

#[test]
fn directory_loader_include_exclude_globs() {
    let dir = tree();
    let docs = DirectoryLoader::builder(dir.path())
        .include("**/*.md")
        .exclude("docs/drafts/**")
        .build()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(sources(&docs), ["a.md", "docs/guide.md"]);

    // `*` does not cross directories.
    let top = DirectoryLoader::builder(dir.path())
        .include("*.md")
        .build()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(sources(&top), ["a.md"]);

    let several = DirectoryLoader::builder(dir.path())
        .include("*.txt")
        .include("docs/*.html")
        .build()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(sources(&several), ["b.txt", "docs/page.html"]);
}

#[test]
fn directory_loader_options() {
    let dir = tree();
    let flat = DirectoryLoader::builder(dir.path())
        .recursive(false)
        .build()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(sources(&flat), ["a.md", "b.txt"]);

    let hidden = DirectoryLoader::builder(dir.path())
        .include("**/*.txt")
        .hidden(true)
        .build()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(sources(&hidden), [".hidden/secret.txt", "b.txt"]);

    let custom = DirectoryLoader::builder(dir.path())
        .include("*.png")
        .loader("PNG", |p: &Path| TextLoader::new(p))
        .build()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(custom[0].content, "not really a png");
    assert_eq!(custom[0].source(), Some("image.png"));

    let only = DirectoryLoader::builder(dir.path())
        .no_default_loaders()
        .loader("txt", |p: &Path| TextLoader::new(p))
        .build()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(sources(&only), ["b.txt"]);
}

#[test]
fn directory_loader_fails_or_skips_bad_files() {
    let dir = tree();
    fs::write(dir.path().join("broken.txt"), b"\xff").unwrap();
    let strict = DirectoryLoader::builder(dir.path()).build().unwrap().load();
    assert!(matches!(load_error(strict), LoadError::InvalidUtf8 { .. }));

    let report = DirectoryLoader::builder(dir.path())
        .skip_failed(true)
        .build()
        .unwrap()
        .load_with_report()
        .unwrap();
    assert_eq!(report.documents.len(), 6);
    let broken = report
        .skipped
        .iter()
        .find(|s| s.path == "broken.txt")
        .unwrap();
    assert!(matches!(&broken.reason, SkipReason::Failed(m) if m.contains("UTF-8")));
}

#[test]
fn directory_loader_refuses_parent_components() {
    let dir = tree();
    for pattern in ["../**", "docs/../../*.txt", "..\\x"] {
        let err = DirectoryLoader::builder(dir.path())
            .include(pattern)
            .build()
            .unwrap_err();
        assert!(
            matches!(err, LoadError::PathEscape { .. }),
            "{pattern}: {err:?}"
        );
    }
    let err = DirectoryLoader::builder(dir.path())
        .exclude("/etc/**")
        .build()
        .unwrap_err();
    assert!(matches!(err, LoadError::PathEscape { .. }));

    // An absolute pattern inside the root is made relative.
    let inside = format!("{}/docs/*.md", dir.path().display());
    let docs = DirectoryLoader::builder(dir.path())
        .include(inside)
        .build()
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(sources(&docs), ["docs/guide.md"]);

    let err = DirectoryLoader::builder(dir.path())
        .include("[unclosed")
        .build()
        .unwrap_err();
    assert!(matches!(err, LoadError::InvalidPattern { .. }));
}

#[test]
fn load_path_stays_inside_the_root() {
    let outer = tempfile::tempdir().unwrap();
    write(outer.path(), "secret.txt", "top secret");
    write(outer.path(), "root/ok.txt", "fine");
    write(outer.path(), "root/sub/x.txt", "x");
    let root = outer.path().join("root");
    let loader = DirectoryLoader::builder(&root).build().unwrap();

    let docs = loader.load_path("sub/x.txt").unwrap();
    assert_eq!(docs[0].content, "x");
    assert_eq!(docs[0].source(), Some("sub/x.txt"));
    assert_eq!(
        loader.load_path(root.join("ok.txt")).unwrap()[0].content,
        "fine"
    );

    for escaping in ["../secret.txt", "sub/../../secret.txt", "sub/../ok.txt"] {
        assert!(
            matches!(
                load_error(loader.load_path(escaping)),
                LoadError::PathEscape { .. }
            ),
            "{escaping}"
        );
    }
    let absolute = outer.path().join("secret.txt");
    assert!(matches!(
        load_error(loader.load_path(&absolute)),
        LoadError::PathEscape { .. }
    ));
    assert!(matches!(
        load_error(loader.load_path("sub")),
        LoadError::NotAFile { .. }
    ));
    assert!(matches!(
        load_error(loader.load_path("nope.txt")),
        LoadError::Io { .. }
    ));

    let md_only = DirectoryLoader::builder(&root)
        .include("**/*.md")
        .build()
        .unwrap();
    assert!(matches!(
        load_error(md_only.load_path("ok.txt")),
        LoadError::Excluded { .. }
    ));
}

#[cfg(unix)]
mod symlinks {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn file_symlink_out_of_root_is_not_followed() {
        let outer = tempfile::tempdir().unwrap();
        write(outer.path(), "secret.txt", "top secret");
        write(outer.path(), "root/ok.txt", "fine");
        let root = outer.path().join("root");
        symlink(outer.path().join("secret.txt"), root.join("leak.txt")).unwrap();

        let loader = DirectoryLoader::builder(&root).build().unwrap();
        let report = loader.load_with_report().unwrap();
        assert_eq!(sources(&report.documents), ["ok.txt"]);
        assert!(report.documents.iter().all(|d| d.content != "top secret"));
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].path, "leak.txt");
        assert_eq!(report.skipped[0].reason, SkipReason::SymlinkOutsideRoot);

        // Asked for explicitly, it is an error.
        assert!(matches!(
            load_error(loader.load_path("leak.txt")),
            LoadError::PathEscape { .. }
        ));
    }

    #[test]
    fn directory_symlink_out_of_root_is_not_followed() {
        let outer = tempfile::tempdir().unwrap();
        write(outer.path(), "private/key.txt", "key");
        write(outer.path(), "root/ok.txt", "fine");
        let root = outer.path().join("root");
        symlink(outer.path().join("private"), root.join("linked")).unwrap();

        let loader = DirectoryLoader::builder(&root).build().unwrap();
        let report = loader.load_with_report().unwrap();
        assert_eq!(sources(&report.documents), ["ok.txt"]);
        assert_eq!(report.skipped[0].path, "linked");
        assert_eq!(report.skipped[0].reason, SkipReason::SymlinkOutsideRoot);
        assert!(matches!(
            load_error(loader.load_path("linked/key.txt")),
            LoadError::PathEscape { .. }
        ));
    }

    #[test]
    fn symlinks_inside_root_are_followed_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "real/a.txt", "a");
        write(dir.path(), "other/b.txt", "b");
        symlink(dir.path().join("real"), dir.path().join("0alias")).unwrap();
        symlink(
            dir.path().join("other/b.txt"),
            dir.path().join("b-link.txt"),
        )
        .unwrap();

        let report = DirectoryLoader::builder(dir.path())
            .build()
            .unwrap()
            .load_with_report()
            .unwrap();
        // The real directory wins over the alias, even though the alias sorts first.
        assert_eq!(
            sources(&report.documents),
            ["b-link.txt", "other/b.txt", "real/a.txt"]
        );
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].path, "0alias");
        assert_eq!(report.skipped[0].reason, SkipReason::AlreadyVisited);

        let no_follow = DirectoryLoader::builder(dir.path())
            .follow_symlinks(false)
            .build()
            .unwrap()
            .load_with_report()
            .unwrap();
        assert_eq!(sources(&no_follow.documents), ["other/b.txt", "real/a.txt"]);
        assert!(no_follow
            .skipped
            .iter()
            .all(|s| s.reason == SkipReason::SymlinkNotFollowed));
    }

    #[test]
    fn symlink_loops_terminate() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "sub/a.txt", "a");
        // A link back to an ancestor, and a link to itself.
        symlink(dir.path(), dir.path().join("sub/up")).unwrap();
        symlink(dir.path().join("self"), dir.path().join("self")).unwrap();

        let report = DirectoryLoader::builder(dir.path())
            .build()
            .unwrap()
            .load_with_report()
            .unwrap();
        assert_eq!(sources(&report.documents), ["sub/a.txt"]);
        let reasons: Vec<(&str, &SkipReason)> = report
            .skipped
            .iter()
            .map(|s| (s.path.as_str(), &s.reason))
            .collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(matches!(reasons[0], ("self", SkipReason::Unresolvable(_))));
        assert_eq!(reasons[1], ("sub/up", &SkipReason::AlreadyVisited));
    }

    #[test]
    fn symlink_to_hidden_file_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        // (The loader is picked by the target's extension, so the hidden file is `.env.txt`.)
        write(dir.path(), ".env.txt", "API_KEY=secret");
        write(dir.path(), "ok.txt", "fine");
        symlink(dir.path().join(".env.txt"), dir.path().join("env.txt")).unwrap();

        let loader = DirectoryLoader::builder(dir.path()).build().unwrap();
        let report = loader.load_with_report().unwrap();
        assert_eq!(sources(&report.documents), ["ok.txt"]);
        assert!(report
            .documents
            .iter()
            .all(|d| !d.content.contains("secret")));
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].path, "env.txt");
        assert_eq!(report.skipped[0].reason, SkipReason::SymlinkTargetExcluded);
        assert!(matches!(
            load_error(loader.load_path("env.txt")),
            LoadError::Excluded { .. }
        ));

        // With hidden files on, the link is followed; include patterns select by the
        // link's own name.
        let docs = DirectoryLoader::builder(dir.path())
            .hidden(true)
            .include("e*.txt")
            .build()
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(sources(&docs), ["env.txt"]);
        assert_eq!(docs[0].content, "API_KEY=secret");
    }

    #[test]
    fn symlink_into_excluded_directory_is_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "private/key.txt", "key");
        write(dir.path(), "public/ok.txt", "fine");
        symlink(dir.path().join("private"), dir.path().join("docs")).unwrap();
        symlink(
            dir.path().join("private/key.txt"),
            dir.path().join("public/key.txt"),
        )
        .unwrap();

        let reasons = |report: &catena_core::loader::LoadReport| -> Vec<(String, SkipReason)> {
            report
                .skipped
                .iter()
                .map(|s| (s.path.clone(), s.reason.clone()))
                .collect()
        };

        // The excluded directory itself is pruned: neither link may reach into it.
        let loader = DirectoryLoader::builder(dir.path())
            .exclude("private")
            .build()
            .unwrap();
        let report = loader.load_with_report().unwrap();
        assert_eq!(sources(&report.documents), ["public/ok.txt"]);
        assert_eq!(
            reasons(&report),
            [
                ("docs".to_owned(), SkipReason::SymlinkTargetExcluded),
                (
                    "public/key.txt".to_owned(),
                    SkipReason::SymlinkTargetExcluded
                ),
            ]
        );
        for path in ["docs/key.txt", "public/key.txt", "private/key.txt"] {
            assert!(matches!(
                load_error(loader.load_path(path)),
                LoadError::Excluded { .. }
            ));
        }

        // Only the files are excluded: `private` is walked (so `docs` is an alias of it),
        // and the file link is refused.
        let loader = DirectoryLoader::builder(dir.path())
            .exclude("private/**")
            .build()
            .unwrap();
        let report = loader.load_with_report().unwrap();
        assert_eq!(sources(&report.documents), ["public/ok.txt"]);
        assert_eq!(
            reasons(&report),
            [
                ("docs".to_owned(), SkipReason::AlreadyVisited),
                (
                    "public/key.txt".to_owned(),
                    SkipReason::SymlinkTargetExcluded
                ),
            ]
        );
        for path in ["docs/key.txt", "public/key.txt"] {
            assert!(matches!(
                load_error(loader.load_path(path)),
                LoadError::Excluded { .. }
            ));
        }
    }

    #[test]
    fn directory_reached_through_two_links_is_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), ".h/sub/f.txt", "f");
        symlink(dir.path().join(".h/sub"), dir.path().join("a")).unwrap();
        symlink(dir.path().join(".h"), dir.path().join("b")).unwrap();

        for hidden in [false, true] {
            let report = DirectoryLoader::builder(dir.path())
                .hidden(hidden)
                .build()
                .unwrap()
                .load_with_report()
                .unwrap();
            let contents: Vec<&str> = report
                .documents
                .iter()
                .map(|d| d.content.as_str())
                .collect();
            assert!(
                contents.len() <= 1,
                "hidden({hidden}): {:?}",
                sources(&report.documents)
            );
            if hidden {
                assert_eq!(sources(&report.documents), [".h/sub/f.txt"]);
            }
        }
    }
}

#[test]
fn a_file_over_the_size_cap_is_a_typed_error_and_nothing_is_read() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: 65 MiB long, no disk used.
    let big = dir.path().join("huge.txt");
    fs::File::create(&big)
        .unwrap()
        .set_len(catena_core::loader::DEFAULT_MAX_FILE_BYTES + 1)
        .unwrap();
    for result in [
        TextLoader::new(&big).load(),
        MarkdownLoader::new(&big).load(),
        CsvLoader::new(&big).load(),
    ] {
        match result {
            Err(Error::Load(LoadError::TooLarge { size, max, .. })) => {
                assert_eq!(size, Some(max + 1));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn directory_loads_cap_each_file_and_the_total_and_never_return_a_partial_load() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.txt"), "small one").unwrap();
    fs::write(dir.path().join("b.txt"), "x".repeat(2_000)).unwrap();
    fs::write(dir.path().join("c.txt"), "y".repeat(600)).unwrap();

    let capped = DirectoryLoader::builder(dir.path())
        .max_file_bytes(1_000)
        .build()
        .unwrap();
    assert!(matches!(
        capped.load(),
        Err(Error::Load(LoadError::TooLarge {
            size: Some(2_000),
            max: 1_000,
            ..
        }))
    ));
    // Skipping failures, the large file is reported, the rest loaded.
    let report = DirectoryLoader::builder(dir.path())
        .max_file_bytes(1_000)
        .skip_failed(true)
        .build()
        .unwrap()
        .load_with_report()
        .unwrap();
    assert_eq!(report.documents.len(), 2);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].path, "b.txt");

    // Past the total, nothing at all, even when skipping failures.
    let total = DirectoryLoader::builder(dir.path())
        .max_total_bytes(1_500)
        .skip_failed(true)
        .build()
        .unwrap();
    assert!(matches!(
        total.load(),
        Err(Error::Load(LoadError::TotalTooLarge { max: 1_500, .. }))
    ));
}
