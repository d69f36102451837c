//! Reading bundle files and validating them into a [`Bundle`], collecting every error.

use super::cond::{Cond, During, Op, Path, Root, Segment, Test};
use super::{
    is_mark_label, Bundle, Field, Limit, LoadError, LoadErrors, MarkSpec, Outcome, Pattern, Rule, Selectors, SourceLoc,
    Window,
};
use crate::eval::boundary;
use crate::suggest;
use crate::value::Value;
use crate::yaml::{self, Kind, Loc, Node};
use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

/// Largest policy file read.
const MAX_FILE_BYTES: u64 = 16 << 20;
/// What a whole bundle may expand to, aliases included (§9a).
const MAX_BUNDLE_EXPANSION: usize = 64 << 20;

/// Loads a bundle from a file or a directory (every `*.yaml`, `*.yml`, `*.json`
/// below it in byte order of path, except `*.test.yaml`).
pub fn load_path(path: &FsPath) -> Result<Bundle, LoadErrors> {
    let here = |message: String| {
        LoadErrors(vec![LoadError {
            loc: SourceLoc { file: Arc::from(path.display().to_string()), line: 1, column: 1 },
            message,
            help: None,
        }])
    };
    let meta = std::fs::metadata(path).map_err(|e| here(format!("cannot read: {e}")))?;
    let mut files = Vec::new();
    if meta.is_dir() {
        let mut walk = Walk::default();
        walk.dir(path, &mut Vec::new()).map_err(|e| here(format!("cannot list the folder: {e}")))?;
        if !walk.errors.is_empty() {
            return Err(LoadErrors(walk.errors));
        }
        files = walk.unique_files();
        if files.is_empty() {
            return Err(LoadErrors(vec![LoadError {
                loc: SourceLoc { file: Arc::from(path.display().to_string()), line: 1, column: 1 },
                message: "no policy files (`*.yaml`, `*.yml`, `*.json`) in this folder".into(),
                help: Some("test files (`*.test.yaml`) are not policies".into()),
            }]));
        }
    } else {
        files.push(path.to_path_buf());
    }
    let mut texts = Vec::with_capacity(files.len());
    let mut errors = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let read = std::fs::metadata(f).and_then(|m| {
            if m.len() > MAX_FILE_BYTES {
                Err(std::io::Error::other(format!("file is larger than {MAX_FILE_BYTES} bytes")))
            } else {
                std::fs::read(f)
            }
        });
        match read.map(String::from_utf8) {
            Ok(Ok(t)) => texts.push((name, t)),
            Ok(Err(_)) => errors.push(LoadError {
                loc: SourceLoc { file: Arc::from(name), line: 1, column: 1 },
                message: "file is not valid UTF-8".into(),
                help: None,
            }),
            Err(e) => errors.push(LoadError {
                loc: SourceLoc { file: Arc::from(name), line: 1, column: 1 },
                message: format!("cannot read: {e}"),
                help: None,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    load_files(&texts)
}

/// Whether a file name is a policy file of a bundle folder: `*.yaml`, `*.yml` or
/// `*.json` but not `*.test.yaml`, compared case-insensitively (§9a: `Deny.YAML` is a
/// policy, `X.Test.Yaml` a test file — a folder hides nothing on a file system that
/// does not care about case).
pub fn is_policy_file_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let policy = lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json");
    policy && !is_test_file_name(name)
}

/// Whether a file name is a policy test file (`*.test.yaml`, any case).
pub fn is_test_file_name(name: &str) -> bool {
    name.to_ascii_lowercase().ends_with(".test.yaml")
}

/// The walk of a bundle folder (§9a): symlinks are followed, a file reached twice is
/// loaded once (at the first path in byte order), a symlink loop or an entry whose name
/// is not UTF-8 is a load error naming it.
#[derive(Default)]
struct Walk {
    /// Policy files found: (path, the file's identity).
    found: Vec<(PathBuf, FileId)>,
    errors: Vec<LoadError>,
}

/// Whether following a path failed because its links go round in a circle (`ELOOP`).
fn is_symlink_loop(e: &std::io::Error) -> bool {
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "openbsd"))]
    const ELOOP: i32 = 62;
    #[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd", target_os = "openbsd")))]
    const ELOOP: i32 = 40;
    e.raw_os_error() == Some(ELOOP)
}

/// What makes two paths the same file: device and inode where there are such.
#[derive(Clone, PartialEq, Eq, Hash)]
enum FileId {
    #[cfg(unix)]
    Inode(u64, u64),
    #[cfg_attr(unix, allow(dead_code))]
    Path(PathBuf),
}

fn file_id(path: &FsPath, meta: &std::fs::Metadata) -> std::io::Result<FileId> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let _ = path;
        Ok(FileId::Inode(meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(FileId::Path(std::fs::canonicalize(path)?))
    }
}

impl Walk {
    fn error(&mut self, path: &FsPath, message: String) {
        self.errors.push(LoadError {
            loc: SourceLoc { file: Arc::from(path.display().to_string()), line: 1, column: 1 },
            message,
            help: None,
        });
    }

    /// Walks `dir`; `above` holds the identities of the folders on the way down, so a
    /// link back to one of them is a loop.
    fn dir(&mut self, dir: &FsPath, above: &mut Vec<FileId>) -> std::io::Result<()> {
        let meta = std::fs::metadata(dir)?;
        let id = file_id(dir, &meta)?;
        above.push(id);
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_str().is_none() {
                self.error(&path, "a folder entry whose name is not UTF-8 cannot be part of a bundle".into());
                continue;
            }
            entries.push(path);
        }
        entries.sort_by(|a, b| a.as_os_str().as_encoded_bytes().cmp(b.as_os_str().as_encoded_bytes()));
        for path in entries {
            let is_link = std::fs::symlink_metadata(&path).map(|m| m.file_type().is_symlink()).unwrap_or(false);
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if is_symlink_loop(&e) => {
                    self.error(&path, "symlink loop".into());
                    continue;
                }
                Err(e) => {
                    // A dangling link that is not a policy file name is nothing of the
                    // bundle's; one that is, is a file the bundle cannot read.
                    if !is_link || is_policy_file_name(&name) {
                        self.error(&path, format!("cannot read: {e}"));
                    }
                    continue;
                }
            };
            if meta.is_dir() {
                let id = file_id(&path, &meta)?;
                if above.contains(&id) {
                    self.error(&path, "symlink loop: this link leads back to a folder above it".into());
                    continue;
                }
                self.dir(&path, above)?;
            } else if is_policy_file_name(&name) {
                let id = file_id(&path, &meta)?;
                self.found.push((path, id));
            }
        }
        above.pop();
        Ok(())
    }

    /// The files in byte order of path, each file once: at the first path reaching it.
    fn unique_files(self) -> Vec<PathBuf> {
        let mut found = self.found;
        found.sort_by(|a, b| a.0.as_os_str().as_encoded_bytes().cmp(b.0.as_os_str().as_encoded_bytes()));
        let mut seen = HashSet::new();
        found.into_iter().filter(|(_, id)| seen.insert(id.clone())).map(|(p, _)| p).collect()
    }
}

/// Loads a one-file bundle from YAML text (the file is called `<yaml>` in errors).
pub fn load_yaml(text: &str) -> Result<Bundle, LoadErrors> {
    load_files(&[("<yaml>".to_string(), text.to_string())])
}

/// Loads a bundle from `(file name, text)` pairs, in bundle order.
pub fn load_files(files: &[(String, String)]) -> Result<Bundle, LoadErrors> {
    let mut v = Validator { errors: Vec::new(), file: Arc::from(""), ids: HashSet::new(), limit_ids: HashSet::new() };
    let mut rules = Vec::new();
    let mut limits = Vec::new();
    let mut default: Option<(Outcome, SourceLoc)> = None;
    // The policy hash is streamed: canonical JSON of `[file, …]` straight into SHA-256.
    let mut hasher = yaml::CanonicalHasher::new();
    hasher.push("[");
    let mut names = Vec::with_capacity(files.len());
    let mut bundle_left = MAX_BUNDLE_EXPANSION;
    for (name, text) in files {
        v.file = Arc::from(name.as_str());
        names.push(name.clone());
        let root = match yaml::parse_within(text, yaml::expansion_budget(text.len()).min(bundle_left)) {
            Ok((Some(n), used)) => {
                bundle_left -= used;
                n
            }
            Ok((None, _)) => {
                v.err(Loc { line: 1, column: 1 }, "empty policy file".into(), Some("start it with `aegis: 1`".into()));
                continue;
            }
            Err(es) => {
                for e in es {
                    v.err(e.loc, e.message, None);
                }
                continue;
            }
        };
        if names.len() > 1 {
            hasher.push(",");
        }
        hasher.node(&root);
        v.file_root(&root, &mut rules, &mut limits, &mut default);
    }
    if !v.errors.is_empty() {
        return Err(LoadErrors(v.errors));
    }
    hasher.push("]");
    let mut hash = String::with_capacity(64);
    crate::audit::hex_into(&mut hash, &hasher.finish());
    Ok(Bundle { rules, limits, default: default.map_or(Outcome::Deny, |d| d.0), hash, files: names })
}

struct Validator {
    errors: Vec<LoadError>,
    file: Arc<str>,
    ids: HashSet<String>,
    limit_ids: HashSet<String>,
}

const FILE_KEYS: [&str; 4] = ["aegis", "default", "rules", "limits"];
const RULE_KEYS: [&str; 9] = ["id", "description", "match", "when", "outcome", "reason", "approvers", "tags", "marks"];
const MARK_KEYS: [&str; 2] = ["label", "ttl"];
const LIMIT_KEYS: [&str; 8] = ["id", "match", "per", "window", "max_calls", "sum", "max_sum", "outcome"];
const OUTCOMES: [&str; 3] = ["allow", "deny", "require_approval"];

impl Validator {
    fn loc(&self, l: Loc) -> SourceLoc {
        SourceLoc { file: self.file.clone(), line: l.line, column: l.column }
    }

    fn err(&mut self, l: Loc, message: String, help: Option<String>) {
        let loc = self.loc(l);
        self.errors.push(LoadError { loc, message, help });
    }

    fn unknown_key(&mut self, what: &str, key: &str, kloc: Loc, known: &[&'static str]) {
        let help = suggest::closest(key, known.iter().copied())
            .map(|s| format!("did you mean \"{s}\"?"))
            .or_else(|| Some(format!("expected one of: {}", known.join(", "))));
        self.err(kloc, format!("unknown key \"{key}\" in {what}"), help);
    }

    fn entries<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(String, Loc, Node)]> {
        match &node.kind {
            Kind::Map(e) => Some(e),
            _ => {
                self.err(node.loc, format!("{what} must be a mapping, found a {}", node.type_name()), None);
                None
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            Kind::String(s) => Some(s.clone()),
            _ => {
                self.err(node.loc, format!("{what} must be a string, found a {}", node.type_name()), None);
                None
            }
        }
    }

    fn strings(&mut self, node: &Node, what: &str, allow_scalar: bool) -> Option<Vec<(String, Loc)>> {
        match &node.kind {
            Kind::String(s) if allow_scalar => Some(vec![(s.clone(), node.loc)]),
            Kind::Seq(items) => {
                if items.is_empty() {
                    self.err(node.loc, format!("{what} must not be an empty list"), None);
                    return None;
                }
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for it in items {
                    match self.string(it, &format!("each entry of {what}")) {
                        Some(s) => out.push((s, it.loc)),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                let expected = if allow_scalar { "a string or a list of strings" } else { "a list of strings" };
                self.err(node.loc, format!("{what} must be {expected}, found a {}", node.type_name()), None);
                None
            }
        }
    }

    fn outcome(&mut self, node: &Node) -> Option<Outcome> {
        let s = self.string(node, "`outcome`")?;
        match Outcome::parse(&s) {
            Some(o) => Some(o),
            None => {
                let help = suggest::closest(&s, OUTCOMES).map(|x| format!("did you mean \"{x}\"?"));
                self.err(
                    node.loc,
                    format!("unknown outcome \"{s}\""),
                    help.or(Some("expected allow, deny or require_approval".into())),
                );
                None
            }
        }
    }

    fn file_root(
        &mut self,
        root: &Node,
        rules: &mut Vec<Rule>,
        limits: &mut Vec<Limit>,
        default: &mut Option<(Outcome, SourceLoc)>,
    ) {
        let Some(entries) = self.entries(root, "a policy file") else { return };
        let mut saw_version = false;
        for (key, kloc, value) in entries {
            match key.as_str() {
                "aegis" => {
                    saw_version = true;
                    if !matches!(value.kind, Kind::Number(n) if n == 1.0) {
                        self.err(value.loc, "unsupported format version".into(), Some("write `aegis: 1`".into()));
                    }
                }
                "default" => {
                    if let Some(o) = self.outcome(value) {
                        if let Some((_, first)) = default {
                            let first = first.clone();
                            self.err(
                                *kloc,
                                format!("`default` is already set at {first}"),
                                Some("at most one file of a bundle sets it".into()),
                            );
                        } else {
                            *default = Some((o, self.loc(*kloc)));
                        }
                    }
                }
                "rules" => match &value.kind {
                    Kind::Seq(items) => {
                        for item in items {
                            if let Some(r) = self.rule(item) {
                                rules.push(r);
                            }
                        }
                    }
                    _ => self.err(value.loc, format!("`rules` must be a list, found a {}", value.type_name()), None),
                },
                "limits" => match &value.kind {
                    Kind::Seq(items) => {
                        for item in items {
                            if let Some(l) = self.limit(item) {
                                limits.push(l);
                            }
                        }
                    }
                    _ => self.err(value.loc, format!("`limits` must be a list, found a {}", value.type_name()), None),
                },
                other => self.unknown_key("a policy file", other, *kloc, &FILE_KEYS),
            }
        }
        if !saw_version {
            self.err(root.loc, "missing `aegis` format version".into(), Some("start the file with `aegis: 1`".into()));
        }
    }

    fn id(&mut self, node: &Node, limit: bool) -> Option<String> {
        let id = self.string(node, "`id`")?;
        let valid = id.len() <= 128
            && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            self.err(
                node.loc,
                format!("invalid id \"{id}\""),
                Some("ids match [A-Za-z0-9][A-Za-z0-9_.-]{0,127}".into()),
            );
            return None;
        }
        if id == "default" {
            self.err(node.loc, "the id \"default\" is reserved".into(), Some("choose another id".into()));
            return None;
        }
        let seen = if limit { &mut self.limit_ids } else { &mut self.ids };
        if !seen.insert(id.clone()) {
            let what = if limit { "limit" } else { "rule" };
            self.err(
                node.loc,
                format!("duplicate {what} id \"{id}\""),
                Some(format!("{what} ids are unique in a bundle")),
            );
            return None;
        }
        Some(id)
    }

    fn selectors(&mut self, node: &Node) -> Option<Selectors> {
        let entries = self.entries(node, "`match`")?;
        let mut sel = Selectors::default();
        let mut ok = true;
        for (key, kloc, value) in entries {
            let slot = sel.fields.iter_mut().zip(Field::SELECTORS).find(|(_, f)| f.name() == key);
            let Some((slot, _)) = slot else {
                self.unknown_key("`match`", key, *kloc, &Field::SELECTOR_NAMES);
                ok = false;
                continue;
            };
            let Some(pats) = self.strings(value, &format!("`match.{key}`"), true) else {
                ok = false;
                continue;
            };
            let mut compiled = Vec::with_capacity(pats.len());
            for (p, ploc) in pats {
                if p.is_empty() {
                    self.err(
                        ploc,
                        format!("empty pattern in `match.{key}`"),
                        Some("use \"*\" to match any name, or leave the selector out".into()),
                    );
                    ok = false;
                } else if p.len() > 256 || p.chars().any(char::is_control) {
                    self.err(
                        ploc,
                        format!("invalid pattern in `match.{key}`"),
                        Some("names are 1–256 bytes without control characters".into()),
                    );
                    ok = false;
                } else {
                    compiled.push(Pattern::new(&p));
                }
            }
            *slot = Some(compiled);
        }
        ok.then_some(sel)
    }

    fn rule(&mut self, node: &Node) -> Option<Rule> {
        let entries = self.entries(node, "a rule")?;
        let before = self.errors.len();
        let (mut id, mut description, mut selectors, mut when, mut outcome, mut reason) =
            (None, None, Selectors::default(), None, None, None);
        let mut approvers: Option<(Vec<String>, Loc)> = None;
        let mut tags = Vec::new();
        let mut marks = Vec::new();
        for (key, kloc, value) in entries {
            match key.as_str() {
                "id" => id = self.id(value, false),
                "description" => description = self.string(value, "`description`"),
                "reason" => reason = self.string(value, "`reason`"),
                "match" => selectors = self.selectors(value).unwrap_or_default(),
                "when" => when = self.cond(value),
                "outcome" => outcome = self.outcome(value),
                "approvers" => {
                    if let Some(a) = self.strings(value, "`approvers`", false) {
                        approvers = Some((a.into_iter().map(|x| x.0).collect(), *kloc));
                    }
                }
                "tags" => {
                    if let Some(t) = self.strings(value, "`tags`", false) {
                        tags = t.into_iter().map(|x| x.0).collect();
                    }
                }
                "marks" => marks = self.marks(value).unwrap_or_default(),
                other => self.unknown_key("a rule", other, *kloc, &RULE_KEYS),
            }
        }
        if !entries.iter().any(|(k, _, _)| k == "id") {
            self.err(node.loc, "rule has no `id`".into(), Some("give every rule a unique `id`".into()));
        }
        if !entries.iter().any(|(k, _, _)| k == "outcome") {
            self.err(
                node.loc,
                "rule has no `outcome`".into(),
                Some("add `outcome: allow`, `deny` or `require_approval`".into()),
            );
        }
        if let (Some((_, aloc)), Some(o)) = (&approvers, outcome) {
            if o != Outcome::RequireApproval {
                let aloc = *aloc;
                self.err(
                    aloc,
                    format!("`approvers` on a rule whose outcome is {o}"),
                    Some("approvers only go with `outcome: require_approval`".into()),
                );
            }
        }
        if self.errors.len() != before {
            return None;
        }
        let reads_marks = when.as_ref().is_some_and(Cond::reads_marks);
        Some(Rule {
            id: id?,
            description,
            selectors,
            when,
            marks,
            reads_marks,
            outcome: outcome?,
            reason,
            approvers: approvers.map(|a| a.0).unwrap_or_default(),
            tags,
            loc: self.loc(node.loc),
        })
    }

    /// A rule's `marks` (§10): a list of labels or `{label, ttl}` mappings, each
    /// label once.
    fn marks(&mut self, node: &Node) -> Option<Vec<MarkSpec>> {
        let Kind::Seq(items) = &node.kind else {
            self.err(
                node.loc,
                format!("`marks` must be a list, found a {}", node.type_name()),
                Some("write `marks: [label]` or `marks: [{label: L, ttl: 1h}]`".into()),
            );
            return None;
        };
        let before = self.errors.len();
        let mut out: Vec<MarkSpec> = Vec::with_capacity(items.len());
        for item in items {
            let (label, lloc, ttl) = match &item.kind {
                Kind::String(l) => (l.clone(), item.loc, None),
                Kind::Map(entries) => {
                    let (mut label, mut ttl) = (None, None);
                    for (key, kloc, value) in entries {
                        match key.as_str() {
                            "label" => label = self.string(value, "a mark's `label`").map(|l| (l, value.loc)),
                            "ttl" => ttl = Some(value),
                            other => self.unknown_key("a mark", other, *kloc, &MARK_KEYS),
                        }
                    }
                    if !entries.iter().any(|(k, _, _)| k == "label") {
                        self.err(item.loc, "mark has no `label`".into(), Some("write `{label: L, ttl: 1h}`".into()));
                    }
                    let Some((label, lloc)) = label else { continue };
                    (label, lloc, ttl)
                }
                _ => {
                    self.err(
                        item.loc,
                        format!("a mark is a label or a `{{label, ttl}}` mapping, found a {}", item.type_name()),
                        None,
                    );
                    continue;
                }
            };
            let ttl_ms = match ttl {
                None => None,
                Some(t) => match &t.kind {
                    Kind::String(text) => match parse_duration(text) {
                        Some(ms) => Some(ms),
                        None => {
                            self.err(
                                t.loc,
                                format!("invalid ttl \"{text}\""),
                                Some("a ttl is a whole number above 0 and s, m, h or d, like `2h`".into()),
                            );
                            None
                        }
                    },
                    _ => {
                        self.err(
                            t.loc,
                            format!("a mark's `ttl` must be a string like `2h`, found a {}", t.type_name()),
                            None,
                        );
                        None
                    }
                },
            };
            if !is_mark_label(&label) {
                self.err(
                    lloc,
                    format!("invalid mark label \"{label}\""),
                    Some("a label is 1 to 128 of A-Z a-z 0-9 _ . : - and starts with a letter or digit".into()),
                );
                continue;
            }
            if out.iter().any(|m| *m.label == *label) {
                self.err(lloc, format!("mark \"{label}\" listed twice"), Some("list each label once".into()));
                continue;
            }
            out.push(MarkSpec { label: Arc::from(label.as_str()), ttl_ms });
        }
        (self.errors.len() == before).then_some(out)
    }

    fn limit(&mut self, node: &Node) -> Option<Limit> {
        let entries = self.entries(node, "a limit")?;
        let before = self.errors.len();
        let mut id = None;
        let mut selectors = Selectors::default();
        let mut per = Vec::new();
        let mut window = None;
        let mut max_calls = None;
        let mut sum = None;
        let mut max_sum = None;
        let mut outcome = Outcome::Deny;
        for (key, kloc, value) in entries {
            match key.as_str() {
                "id" => id = self.id(value, true),
                "match" => selectors = self.selectors(value).unwrap_or_default(),
                "per" => match &value.kind {
                    Kind::Seq(items) => {
                        for it in items {
                            let f = match &it.kind {
                                Kind::String(s) => Field::parse(s).filter(|f| f.is_limit_key()),
                                _ => None,
                            };
                            match f {
                                Some(f) if !per.contains(&f) => per.push(f),
                                Some(_) => self.err(it.loc, "duplicate entry in `per`".into(), None),
                                None => {
                                    self.err(it.loc, "`per` entries are agent, session, tool or action".into(), None)
                                }
                            }
                        }
                    }
                    _ => self.err(value.loc, format!("`per` must be a list, found a {}", value.type_name()), None),
                },
                "window" => {
                    if let Some(s) = self.string(value, "`window`") {
                        match parse_duration(&s) {
                            Some(ms) => window = Some(Window { millis: ms, text: s }),
                            None => self.err(
                                value.loc,
                                format!("invalid window \"{s}\""),
                                Some("write N followed by s, m, h or d, like `1h`".into()),
                            ),
                        }
                    }
                }
                "max_calls" => match value.kind {
                    Kind::Number(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9.0e15 => max_calls = Some(n as u64),
                    _ => self.err(value.loc, "`max_calls` must be a whole number ≥ 0".into(), None),
                },
                "max_sum" => match value.kind {
                    Kind::Number(n) if n >= 0.0 => max_sum = Some(n),
                    _ => self.err(value.loc, "`max_sum` must be a number ≥ 0".into(), None),
                },
                "sum" => {
                    if let Some(s) = self.string(value, "`sum`") {
                        match parse_path(&s) {
                            Ok(p) if p.root == Root::Field(Field::Params) => sum = Some((p, s)),
                            Ok(_) => self.err(
                                value.loc,
                                format!("`sum` must be a params path, found \"{s}\""),
                                Some("like `params.amount`".into()),
                            ),
                            Err((m, h)) => self.err(value.loc, m, h),
                        }
                    }
                }
                "outcome" => {
                    if let Some(o) = self.outcome(value) {
                        if o == Outcome::Allow {
                            self.err(value.loc, "a limit's outcome is deny or require_approval".into(), None);
                        }
                        outcome = o;
                    }
                }
                other => self.unknown_key("a limit", other, *kloc, &LIMIT_KEYS),
            }
        }
        let has = |k: &str| entries.iter().any(|(x, _, _)| x == k);
        if !has("id") {
            self.err(node.loc, "limit has no `id`".into(), None);
        }
        if !has("window") {
            self.err(node.loc, "limit has no `window`".into(), Some("like `window: 1h`".into()));
        }
        if has("sum") != has("max_sum") {
            self.err(node.loc, "`sum` and `max_sum` go together".into(), None);
        }
        if !has("max_calls") && !has("max_sum") {
            self.err(node.loc, "limit has neither `max_calls` nor `sum` with `max_sum`".into(), None);
        }
        if self.errors.len() != before {
            return None;
        }
        Some(Limit {
            id: id?,
            selectors,
            per,
            window: window?,
            max_calls,
            sum,
            max_sum,
            outcome,
            loc: self.loc(node.loc),
        })
    }

    fn cond(&mut self, node: &Node) -> Option<Cond> {
        let entries = self.entries(node, "a condition")?;
        if entries.is_empty() {
            self.err(
                node.loc,
                "empty condition".into(),
                Some("leave `when` out for a rule that always applies".into()),
            );
            return None;
        }
        let mut parts = Vec::with_capacity(entries.len());
        let mut ok = true;
        for (key, kloc, value) in entries {
            let part = match key.as_str() {
                "all" | "any" => match &value.kind {
                    Kind::Seq(items) if !items.is_empty() => {
                        let subs: Vec<Option<Cond>> = items.iter().map(|i| self.cond(i)).collect();
                        if subs.iter().all(Option::is_some) {
                            let subs = subs.into_iter().flatten().collect();
                            Some(if key == "all" { Cond::All(subs) } else { Cond::Any(subs) })
                        } else {
                            None
                        }
                    }
                    _ => {
                        self.err(value.loc, format!("`{key}` takes a non-empty list of conditions"), None);
                        None
                    }
                },
                "not" => self.cond(value).map(|c| Cond::Not(Box::new(c))),
                path => self.path_cond(path, *kloc, value),
            };
            match part {
                Some(p) => parts.push(p),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        if parts.len() == 1 {
            parts.pop()
        } else {
            Some(Cond::All(parts))
        }
    }

    fn path_cond(&mut self, text: &str, kloc: Loc, value: &Node) -> Option<Cond> {
        let path = match parse_path(text) {
            Ok(p) => p,
            Err((m, h)) => {
                self.err(kloc, m, h);
                return None;
            }
        };
        let mut tests = Vec::new();
        match &value.kind {
            Kind::Map(ops) => {
                if ops.is_empty() {
                    self.err(value.loc, format!("no operator for \"{text}\""), None);
                    return None;
                }
                let mut ok = true;
                for (opname, oloc, operand) in ops {
                    match self.op(&path, opname, *oloc, operand) {
                        Some(op) => tests.push(Cond::Test(Box::new(Test {
                            path: path.clone(),
                            op,
                            operand: operand.to_value(),
                        }))),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
            }
            Kind::Seq(_) => {
                let op = self.op(&path, "in", value.loc, value)?;
                tests.push(Cond::Test(Box::new(Test { path, op, operand: value.to_value() })));
            }
            Kind::Null => {
                self.err(
                    value.loc,
                    format!("no value to compare \"{text}\" with"),
                    Some("write `{eq: null}` to test for null".into()),
                );
                return None;
            }
            _ => {
                let op = self.op(&path, "eq", value.loc, value)?;
                tests.push(Cond::Test(Box::new(Test { path, op, operand: value.to_value() })));
            }
        }
        if tests.len() == 1 {
            tests.pop()
        } else {
            Some(Cond::All(tests))
        }
    }

    fn number(&mut self, op: &str, node: &Node) -> Option<f64> {
        match node.kind {
            Kind::Number(n) => Some(n),
            _ => {
                self.err(node.loc, format!("`{op}` takes a number, found a {}", node.type_name()), None);
                None
            }
        }
    }

    fn scalars(&mut self, op: &str, node: &Node) -> Option<Vec<Value>> {
        match &node.kind {
            Kind::Seq(items) if !items.is_empty() => {
                let mut ok = true;
                for it in items {
                    if !matches!(it.kind, Kind::String(_) | Kind::Number(_) | Kind::Bool(_)) {
                        self.err(it.loc, format!("`{op}` takes a list of scalars, found a {}", it.type_name()), None);
                        ok = false;
                    }
                }
                ok.then(|| items.iter().map(Node::to_value).collect())
            }
            _ => {
                self.err(
                    node.loc,
                    format!("`{op}` takes a non-empty list of scalars, found a {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    fn op(&mut self, path: &Path, name: &str, oloc: Loc, operand: &Node) -> Option<Op> {
        if name == "during" && path.root != Root::Field(Field::Time) {
            self.err(oloc, format!("`during` only applies to `time`, not \"{}\"", path.text), None);
            return None;
        }
        Some(match name {
            "eq" => Op::Eq(operand.to_value()),
            "ne" => Op::Ne(operand.to_value()),
            "lt" => Op::Lt(self.number(name, operand)?),
            "lte" => Op::Lte(self.number(name, operand)?),
            "gt" => Op::Gt(self.number(name, operand)?),
            "gte" => Op::Gte(self.number(name, operand)?),
            "in" => Op::In(self.scalars(name, operand)?),
            "not_in" => Op::NotIn(self.scalars(name, operand)?),
            "starts_with" => Op::StartsWith(self.op_string(name, operand)?),
            "ends_with" => Op::EndsWith(self.op_string(name, operand)?),
            "contains" => match operand.kind {
                Kind::String(_) | Kind::Number(_) | Kind::Bool(_) => Op::Contains(operand.to_value()),
                _ => {
                    self.err(operand.loc, format!("`contains` takes a scalar, found a {}", operand.type_name()), None);
                    return None;
                }
            },
            "contains_any" | "contains_none" => {
                let list = self.strings(operand, &format!("the operand of `{name}`"), false)?;
                let pairs = list
                    .into_iter()
                    .map(|(s, _)| {
                        let lower = s.to_lowercase();
                        (s, lower)
                    })
                    .collect();
                if name == "contains_any" {
                    Op::ContainsAny(pairs)
                } else {
                    Op::ContainsNone(pairs)
                }
            }
            "contains_all" => match &operand.kind {
                Kind::Seq(items) if !items.is_empty() => Op::ContainsAll(items.iter().map(Node::to_value).collect()),
                _ => {
                    self.err(
                        operand.loc,
                        format!("`contains_all` takes a non-empty list, found a {}", operand.type_name()),
                        None,
                    );
                    return None;
                }
            },
            "matches" => {
                let re = self.op_string(name, operand)?;
                match regex::RegexBuilder::new(&re).size_limit(1 << 20).dfa_size_limit(1 << 20).build() {
                    Ok(r) => Op::Matches(Box::new(r)),
                    Err(e) => {
                        let msg = e.to_string();
                        let first = msg.lines().last().unwrap_or("").trim().to_string();
                        self.err(operand.loc, format!("invalid regex \"{re}\""), Some(first));
                        return None;
                    }
                }
            }
            "within" => {
                let list = self.strings(operand, "the operand of `within`", true)?;
                let mut out = Vec::with_capacity(list.len());
                for (p, ploc) in list {
                    match boundary::normalize_path(&p) {
                        Ok(n) => out.push(n),
                        Err(e) => {
                            let why = match e {
                                boundary::PathError::Relative => "is not an absolute path",
                                boundary::PathError::Nul => "contains a NUL byte",
                                boundary::PathError::AboveRoot => "goes above the root",
                            };
                            self.err(ploc, format!("`within` prefix \"{p}\" {why}"), None);
                        }
                    }
                }
                Op::Within(out)
            }
            "domain_in" => {
                let list = self.strings(operand, "the operand of `domain_in`", true)?;
                let mut out = Vec::with_capacity(list.len());
                for (d, dloc) in list {
                    match boundary::normalize_domain(&d) {
                        Ok(n) => out.push(n),
                        Err(why) => self.err(
                            dloc,
                            format!("\"{d}\" is not a domain: {why}"),
                            Some(
                                "write a host name like `example.com` (IDNs in their xn-- form) or an IP address"
                                    .into(),
                            ),
                        ),
                    }
                }
                Op::DomainIn(out)
            }
            "count" => {
                let entries = match &operand.kind {
                    Kind::Map(e) if !e.is_empty() => e,
                    _ => {
                        self.err(
                            operand.loc,
                            format!(
                                "`count` takes a mapping of operators like `{{lte: 10}}`, found a {}",
                                operand.type_name()
                            ),
                            None,
                        );
                        return None;
                    }
                };
                let mut ops = Vec::with_capacity(entries.len());
                for (n, l, o) in entries {
                    if !matches!(n.as_str(), "eq" | "ne" | "lt" | "lte" | "gt" | "gte" | "in" | "not_in") {
                        let help = suggest::closest(n, ["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"])
                            .map(|s| format!("did you mean \"{s}\"?"));
                        self.err(
                            *l,
                            format!("unknown operator \"{n}\" in `count`"),
                            help.or(Some("count takes eq, ne, lt, lte, gt, gte, in, not_in".into())),
                        );
                        return None;
                    }
                    ops.push(self.op(path, n, *l, o)?);
                }
                Op::Count(ops)
            }
            "exists" => match operand.kind {
                Kind::Bool(b) => Op::Exists(b),
                _ => {
                    self.err(
                        operand.loc,
                        format!("`exists` takes a boolean (true or false), found a {}", operand.type_name()),
                        None,
                    );
                    return None;
                }
            },
            "during" => Op::During(Box::new(self.during(operand)?)),
            other => {
                let help = suggest::closest(other, Op::NAMES).map(|s| format!("did you mean \"{s}\"?"));
                self.err(oloc, format!("unknown operator \"{other}\""), help);
                return None;
            }
        })
    }

    fn op_string(&mut self, op: &str, node: &Node) -> Option<String> {
        match &node.kind {
            Kind::String(s) => Some(s.clone()),
            _ => {
                self.err(node.loc, format!("`{op}` takes a string, found a {}", node.type_name()), None);
                None
            }
        }
    }

    fn during(&mut self, node: &Node) -> Option<During> {
        let entries = self.entries(node, "`during`")?;
        let mut days = None;
        let mut hours = None;
        let mut zone = jiff::tz::TimeZone::UTC;
        let mut ok = true;
        for (key, kloc, value) in entries {
            match key.as_str() {
                "days" => match self.strings(value, "`during.days`", true) {
                    Some(list) => {
                        let mut mask = 0u8;
                        for (d, dloc) in list {
                            match parse_days(&d) {
                                Some(m) => mask |= m,
                                None => {
                                    self.err(
                                        dloc,
                                        format!("invalid days \"{d}\""),
                                        Some("write mon…sun or a range like mon-fri".into()),
                                    );
                                    ok = false;
                                }
                            }
                        }
                        days = Some(mask);
                    }
                    None => ok = false,
                },
                "hours" => match self.string(value, "`during.hours`") {
                    Some(h) => match parse_hours(&h) {
                        Some(r) => hours = Some(r),
                        None => {
                            self.err(
                                value.loc,
                                format!("invalid hours \"{h}\""),
                                Some("write HH:MM-HH:MM, like \"09:00-17:00\" (start and end differ)".into()),
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                "zone" => match self.string(value, "`during.zone`") {
                    Some(z) => match jiff::tz::TimeZone::get(&z) {
                        Ok(tz) => zone = tz,
                        Err(_) => {
                            self.err(
                                value.loc,
                                format!("unknown time zone \"{z}\""),
                                Some("use an IANA name like America/New_York".into()),
                            );
                            ok = false;
                        }
                    },
                    None => ok = false,
                },
                other => {
                    self.unknown_key("`during`", other, *kloc, &["days", "hours", "zone"]);
                    ok = false;
                }
            }
        }
        if ok && days.is_none() && hours.is_none() {
            self.err(node.loc, "`during` needs `days`, `hours` or both".into(), None);
            ok = false;
        }
        ok.then_some(During { days, hours, zone })
    }
}

/// Parses a window length `N` + `s|m|h|d`.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let unit = s.chars().last()?;
    let n: i64 = s.get(..s.len() - 1)?.parse().ok()?;
    if n <= 0 || !s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mult = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_days(s: &str) -> Option<u8> {
    let day = |d: &str| DAYS.iter().position(|x| *x == d);
    match s.split_once('-') {
        None => day(s).map(|i| 1u8 << i),
        Some((a, b)) => {
            let (a, b) = (day(a)?, day(b)?);
            let mut mask = 0u8;
            let mut i = a;
            loop {
                mask |= 1 << i;
                if i == b {
                    break;
                }
                i = (i + 1) % 7;
            }
            Some(mask)
        }
    }
}

fn parse_hours(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let hm = |t: &str, end: bool| -> Option<u16> {
        let (h, m) = t.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        if m > 59 || h > 24 || (h == 24 && (m != 0 || !end)) {
            return None;
        }
        Some(h * 60 + m)
    };
    let (a, b) = (hm(a, false)?, hm(b, true)?);
    if a == b {
        return None;
    }
    Some((a, b))
}

/// `paths start with agent, tool, …, params or context`: the path roots of the
/// request-field table.
fn path_roots_help() -> String {
    let [rest @ .., last] = Field::PATH_ROOT_NAMES;
    format!("paths start with {} or {last}", rest.join(", "))
}

/// Parses a condition path.
pub(crate) fn parse_path(text: &str) -> Result<Path, (String, Option<String>)> {
    let mut parts = text.split('.');
    let root_text = parts.next().unwrap_or("");
    let Some(root) = Field::parse_path_root(root_text) else {
        let help = suggest::closest(root_text, Field::PATH_ROOT_NAMES)
            .map(|s| format!("did you mean \"{s}\"?"))
            .or_else(|| Some(path_roots_help()));
        return Err((format!("unknown path \"{text}\""), help));
    };
    let mut segments = Vec::new();
    for seg in parts {
        if seg.is_empty() {
            return Err((format!("empty segment in path \"{text}\""), None));
        }
        let index = if seg.bytes().all(|b| b.is_ascii_digit()) { seg.parse().ok() } else { None };
        segments.push(Segment { key: seg.to_owned(), index });
    }
    let root = match root {
        Field::Params | Field::Context => Root::Field(root),
        Field::Chain => {
            if segments.len() > 1 || segments.first().is_some_and(|s| s.index.is_none()) {
                return Err((format!("\"{text}\": below `chain` only an index is allowed, like `chain.0`"), None));
            }
            Root::Field(root)
        }
        Field::Session if !segments.is_empty() => {
            let marks = segments.first().is_some_and(|s| s.key == "marks");
            if !marks || segments.len() > 2 || segments.get(1).is_some_and(|s| s.index.is_none()) {
                return Err((
                    format!("\"{text}\": below `session` only `marks` is allowed, like `session.marks`"),
                    Some("`session.marks` is the list of the session's live marks; `session.marks.0` its first".into()),
                ));
            }
            segments.remove(0);
            Root::Marks
        }
        _ => {
            if !segments.is_empty() {
                return Err((format!("\"{text}\": `{root_text}` is a string and has no fields"), None));
            }
            Root::Field(root)
        }
    };
    Ok(Path { root, segments, text: text.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages that list request fields say what the field table says.
    #[test]
    fn field_lists_in_messages_follow_the_table() {
        assert_eq!(
            path_roots_help(),
            "paths start with agent, tool, action, session, environment, chain, time, params or context"
        );
        let yaml = "aegis: 1\nrules: []\nlimits:\n  - {id: l, per: [environment], window: 1m, max_calls: 1}\n";
        let errs = load_yaml(yaml).unwrap_err();
        let msg = &errs.0[0].message;
        assert_eq!(msg, "`per` entries are agent, session, tool or action");
        let mut named: Vec<Field> =
            ["agent", "session", "tool", "action"].iter().filter_map(|n| Field::parse(n)).collect();
        named.sort();
        let keys: Vec<Field> = Field::ALL.into_iter().filter(|f| f.is_limit_key()).collect();
        assert_eq!(named, keys);
    }

    #[test]
    fn durations_days_hours() {
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("15m"), Some(900_000));
        assert_eq!(parse_duration("0h"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("-1h"), None);
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_days("mon-fri"), Some(0b0011111));
        assert_eq!(parse_days("fri-mon"), Some(0b1110001));
        assert_eq!(parse_days("sun"), Some(0b1000000));
        assert_eq!(parse_days("funday"), None);
        assert_eq!(parse_hours("09:00-17:00"), Some((540, 1020)));
        assert_eq!(parse_hours("22:00-06:00"), Some((1320, 360)));
        assert_eq!(parse_hours("17:00-24:00"), Some((1020, 1440)));
        assert_eq!(parse_hours("09:00-09:00"), None);
        assert_eq!(parse_hours("9:00-17:00"), None);
    }

    #[test]
    fn paths() {
        assert!(parse_path("params.a.0.b").is_ok());
        assert!(parse_path("chain.0").is_ok());
        assert!(parse_path("chain.x").is_err());
        assert!(parse_path("agent.x").is_err());
        assert!(parse_path("param.x").is_err());
        assert!(parse_path("params..x").is_err());
    }
}
