//! Code-aware separators for [`RecursiveCharacterTextSplitter`](super::RecursiveCharacterTextSplitter),
//! copied from LangChain's `RecursiveCharacterTextSplitter.get_separators_for_language`.
//!
//! ```
//! use catena_core::splitter::Language;
//!
//! let language: Language = "python".parse()?;
//! assert_eq!(language.separators()[0], "\nclass ");
//! # Ok::<(), catena_core::Error>(())
//! ```
//!
//! The separators are regexes. Two of LangChain's patterns are rewritten for Rust's `regex`
//! crate without changing what they match: Visual Basic 6's `(?!End\s)` look-ahead is dropped
//! (what follows it can never start with `End`), and LaTeX's literal `{` is escaped. LaTeX's
//! `$` separators follow Rust semantics (end of text only; Python's `$` also matches before a
//! final newline).

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A language with code-aware separators (LangChain's `Language`, less Perl, which LangChain
/// has no separators for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Language {
    /// C++ (`"cpp"`).
    Cpp,
    /// Go (`"go"`).
    Go,
    /// Java (`"java"`).
    Java,
    /// Kotlin (`"kotlin"`).
    Kotlin,
    /// JavaScript (`"js"`).
    Js,
    /// TypeScript (`"ts"`).
    Ts,
    /// PHP (`"php"`).
    Php,
    /// Protocol Buffers (`"proto"`).
    Proto,
    /// Python (`"python"`).
    Python,
    /// R (`"r"`).
    R,
    /// reStructuredText (`"rst"`).
    Rst,
    /// Ruby (`"ruby"`).
    Ruby,
    /// Rust (`"rust"`).
    Rust,
    /// Scala (`"scala"`).
    Scala,
    /// Swift (`"swift"`).
    Swift,
    /// Markdown (`"markdown"`).
    Markdown,
    /// LaTeX (`"latex"`).
    Latex,
    /// HTML (`"html"`).
    Html,
    /// Solidity (`"sol"`).
    Sol,
    /// C# (`"csharp"`).
    CSharp,
    /// COBOL (`"cobol"`).
    Cobol,
    /// C (`"c"`).
    C,
    /// Lua (`"lua"`).
    Lua,
    /// Haskell (`"haskell"`).
    Haskell,
    /// Elixir (`"elixir"`).
    Elixir,
    /// PowerShell (`"powershell"`).
    PowerShell,
    /// Visual Basic 6 (`"visualbasic6"`).
    VisualBasic6,
}

impl Language {
    /// Every language, in LangChain's order.
    pub const ALL: [Language; 27] = [
        Language::Cpp,
        Language::Go,
        Language::Java,
        Language::Kotlin,
        Language::Js,
        Language::Ts,
        Language::Php,
        Language::Proto,
        Language::Python,
        Language::R,
        Language::Rst,
        Language::Ruby,
        Language::Rust,
        Language::Scala,
        Language::Swift,
        Language::Markdown,
        Language::Latex,
        Language::Html,
        Language::Sol,
        Language::CSharp,
        Language::Cobol,
        Language::C,
        Language::Lua,
        Language::Haskell,
        Language::Elixir,
        Language::PowerShell,
        Language::VisualBasic6,
    ];

    /// LangChain's name for the language (`"rust"`, `"python"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Cpp => "cpp",
            Language::Go => "go",
            Language::Java => "java",
            Language::Kotlin => "kotlin",
            Language::Js => "js",
            Language::Ts => "ts",
            Language::Php => "php",
            Language::Proto => "proto",
            Language::Python => "python",
            Language::R => "r",
            Language::Rst => "rst",
            Language::Ruby => "ruby",
            Language::Rust => "rust",
            Language::Scala => "scala",
            Language::Swift => "swift",
            Language::Markdown => "markdown",
            Language::Latex => "latex",
            Language::Html => "html",
            Language::Sol => "sol",
            Language::CSharp => "csharp",
            Language::Cobol => "cobol",
            Language::C => "c",
            Language::Lua => "lua",
            Language::Haskell => "haskell",
            Language::Elixir => "elixir",
            Language::PowerShell => "powershell",
            Language::VisualBasic6 => "visualbasic6",
        }
    }

    /// The separators, most structural first, as regexes.
    pub fn separators(self) -> &'static [&'static str] {
        match self {
            Language::Cpp => &[
                "\nclass ",
                "\nvoid ",
                "\nint ",
                "\nfloat ",
                "\ndouble ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\nswitch ",
                "\ncase ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Go => &[
                "\nfunc ",
                "\nvar ",
                "\nconst ",
                "\ntype ",
                "\nif ",
                "\nfor ",
                "\nswitch ",
                "\ncase ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Java => &[
                "\nclass ",
                "\npublic ",
                "\nprotected ",
                "\nprivate ",
                "\nstatic ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\nswitch ",
                "\ncase ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Kotlin => &[
                "\nclass ",
                "\npublic ",
                "\nprotected ",
                "\nprivate ",
                "\ninternal ",
                "\ncompanion ",
                "\nfun ",
                "\nval ",
                "\nvar ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\nwhen ",
                "\nelse ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Js => &[
                "\nfunction ",
                "\nconst ",
                "\nlet ",
                "\nvar ",
                "\nclass ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\nswitch ",
                "\ncase ",
                "\ndefault ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Ts => &[
                "\nenum ",
                "\ninterface ",
                "\nnamespace ",
                "\ntype ",
                "\nclass ",
                "\nfunction ",
                "\nconst ",
                "\nlet ",
                "\nvar ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\nswitch ",
                "\ncase ",
                "\ndefault ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Php => &[
                "\nfunction ",
                "\nclass ",
                "\nif ",
                "\nforeach ",
                "\nwhile ",
                "\ndo ",
                "\nswitch ",
                "\ncase ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Proto => &[
                "\nmessage ",
                "\nservice ",
                "\nenum ",
                "\noption ",
                "\nimport ",
                "\nsyntax ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Python => &["\nclass ", "\ndef ", "\n\tdef ", "\n\n", "\n", " ", ""],
            Language::R => &[
                "\nfunction ",
                "\nsetClass\\(",
                "\nsetMethod\\(",
                "\nsetGeneric\\(",
                "\nif ",
                "\nelse ",
                "\nfor ",
                "\nwhile ",
                "\nrepeat ",
                "\nlibrary\\(",
                "\nrequire\\(",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Rst => &[
                "\n=+\n",
                "\n-+\n",
                "\n\\*+\n",
                "\n\n.. *\n\n",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Ruby => &[
                "\ndef ",
                "\nclass ",
                "\nif ",
                "\nunless ",
                "\nwhile ",
                "\nfor ",
                "\ndo ",
                "\nbegin ",
                "\nrescue ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Rust => &[
                "\nfn ", "\nconst ", "\nlet ", "\nif ", "\nwhile ", "\nfor ", "\nloop ",
                "\nmatch ", "\n\n", "\n", " ", "",
            ],
            Language::Scala => &[
                "\nclass ",
                "\nobject ",
                "\ndef ",
                "\nval ",
                "\nvar ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\nmatch ",
                "\ncase ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Swift => &[
                "\nfunc ",
                "\nclass ",
                "\nstruct ",
                "\nenum ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\ndo ",
                "\nswitch ",
                "\ncase ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Markdown => &[
                "\n#{1,6} ",
                "```\n",
                "\n\\*\\*\\*+\n",
                "\n---+\n",
                "\n___+\n",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Latex => &[
                "\n\\\\chapter\\{",
                "\n\\\\section\\{",
                "\n\\\\subsection\\{",
                "\n\\\\subsubsection\\{",
                "\n\\\\begin\\{enumerate}",
                "\n\\\\begin\\{itemize}",
                "\n\\\\begin\\{description}",
                "\n\\\\begin\\{list}",
                "\n\\\\begin\\{quote}",
                "\n\\\\begin\\{quotation}",
                "\n\\\\begin\\{verse}",
                "\n\\\\begin\\{verbatim}",
                "\n\\\\begin\\{align}",
                "$$",
                "$",
                " ",
                "",
            ],
            Language::Html => &[
                "<body", "<div", "<p", "<br", "<li", "<h1", "<h2", "<h3", "<h4", "<h5", "<h6",
                "<span", "<table", "<tr", "<td", "<th", "<ul", "<ol", "<header", "<footer", "<nav",
                "<head", "<style", "<script", "<meta", "<title", "",
            ],
            Language::Sol => &[
                "\npragma ",
                "\nusing ",
                "\ncontract ",
                "\ninterface ",
                "\nlibrary ",
                "\nconstructor ",
                "\ntype ",
                "\nfunction ",
                "\nevent ",
                "\nmodifier ",
                "\nerror ",
                "\nstruct ",
                "\nenum ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\ndo while ",
                "\nassembly ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::CSharp => &[
                "\ninterface ",
                "\nenum ",
                "\ndelegate ",
                "\nevent ",
                "\nclass ",
                "\nabstract ",
                "\npublic ",
                "\nprotected ",
                "\nprivate ",
                "\nstatic ",
                "\nreturn ",
                "\nif ",
                "\ncontinue ",
                "\nfor ",
                "\nforeach ",
                "\nwhile ",
                "\nswitch ",
                "\nbreak ",
                "\ncase ",
                "\nelse ",
                "\ntry ",
                "\nthrow ",
                "\nfinally ",
                "\ncatch ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Cobol => &[
                "\nIDENTIFICATION DIVISION.",
                "\nENVIRONMENT DIVISION.",
                "\nDATA DIVISION.",
                "\nPROCEDURE DIVISION.",
                "\nWORKING-STORAGE SECTION.",
                "\nLINKAGE SECTION.",
                "\nFILE SECTION.",
                "\nINPUT-OUTPUT SECTION.",
                "\nOPEN ",
                "\nCLOSE ",
                "\nREAD ",
                "\nWRITE ",
                "\nIF ",
                "\nELSE ",
                "\nMOVE ",
                "\nPERFORM ",
                "\nUNTIL ",
                "\nVARYING ",
                "\nACCEPT ",
                "\nDISPLAY ",
                "\nSTOP RUN.",
                "\n",
                " ",
                "",
            ],
            Language::C => &[
                "\nclass ",
                "\nvoid ",
                "\nint ",
                "\nfloat ",
                "\ndouble ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\nswitch ",
                "\ncase ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Lua => &[
                "\nlocal ",
                "\nfunction ",
                "\nif ",
                "\nfor ",
                "\nwhile ",
                "\nrepeat ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Haskell => &[
                "\nmain :: ",
                "\nmain = ",
                "\nlet ",
                "\nin ",
                "\ndo ",
                "\nwhere ",
                "\n:: ",
                "\n= ",
                "\ndata ",
                "\nnewtype ",
                "\ntype ",
                "\nmodule ",
                "\nimport ",
                "\nqualified ",
                "\nimport qualified ",
                "\nclass ",
                "\ninstance ",
                "\ncase ",
                "\n| ",
                "\n= \\{",
                "\n, ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::Elixir => &[
                "\ndef ",
                "\ndefp ",
                "\ndefmodule ",
                "\ndefprotocol ",
                "\ndefmacro ",
                "\ndefmacrop ",
                "\nif ",
                "\nunless ",
                "\ncase ",
                "\ncond ",
                "\nwith ",
                "\nfor ",
                "\ndo ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::PowerShell => &[
                "\nfunction ",
                "\nparam ",
                "\nif ",
                "\nforeach ",
                "\nfor ",
                "\nwhile ",
                "\nswitch ",
                "\nclass ",
                "\ntry ",
                "\ncatch ",
                "\nfinally ",
                "\n\n",
                "\n",
                " ",
                "",
            ],
            Language::VisualBasic6 => &[
                "\\n(?:Public|Private|Friend|Global|Static)\\s+?Sub\\s+",
                "\\n(?:Public|Private|Friend|Global|Static)\\s+?Function\\s+",
                "\\n(?:Public|Private|Friend|Global|Static)\\s+?Property\\s+(?:Get|Let|Set)\\s+",
                "\\n(?:Public|Private|Friend|Global|Static)\\s+?Type\\s+",
                "\\n(?:Public|Private|Friend|Global|Static)\\s+?Enum\\s+",
                "\\nIf\\s+",
                "\\nElseIf\\s+",
                "\\nElse\\s+",
                "\\nSelect\\s+Case\\s+",
                "\\nCase\\s+",
                "\\nFor\\s+",
                "\\nDo\\s+",
                "\\nWhile\\s+",
                "\\nWith\\s+",
                "\\n\\n",
                "\\n",
                " ",
                "",
            ],
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Language {
    type Err = Error;

    /// Parses LangChain's name for a language.
    fn from_str(name: &str) -> Result<Self, Error> {
        Language::ALL
            .into_iter()
            .find(|l| l.as_str() == name)
            .ok_or_else(|| Error::invalid_config(format!("unknown language {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_separator_compiles() {
        for language in Language::ALL {
            for separator in language.separators() {
                assert!(
                    regex::Regex::new(separator).is_ok(),
                    "{language}: {separator:?}"
                );
            }
            assert_eq!(language.as_str().parse::<Language>().unwrap(), language);
        }
        assert!("perl".parse::<Language>().is_err());
    }
}
