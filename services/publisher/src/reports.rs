//! The report store under `reports.dir`: `<pr>/<head>.json` (the report document), `<pr>/<head>.html` (its page), `<pr>/<head>.rev.json` (the revision it answers, so an older revision delivered late is not published over a newer one) and `index.html`. Every file is replaced atomically, so a web server never serves half a page, and writing the same revision again replaces it.

use crate::html::{self, IndexEntry};
use findings::{CheckReport, Verdict};
use pipeline::messages::Revision;
use serde::Deserialize;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Reports listed in `index.html`.
pub const INDEX_LIMIT: usize = 200;

/// How many times the index is rebuilt when other writers changed the store while it was being built.
const INDEX_ATTEMPTS: usize = 5;

/// Whether [`ReportStore::write`] made a new report or replaced one for the same revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    Replaced,
}

/// The reports of one repository, in one directory.
#[derive(Debug, Clone)]
pub struct ReportStore {
    dir: PathBuf,
}

/// One report file found on disk, before it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Listed {
    path: PathBuf,
    pr: u64,
    head: String,
    modified: SystemTime,
}

/// What the index needs from a report document; the rest of it (possibly thousands of findings) is skipped.
#[derive(Deserialize)]
struct Summary {
    verdict: Verdict,
    #[serde(default)]
    reason: String,
}

impl ReportStore {
    pub fn new(dir: PathBuf) -> ReportStore {
        ReportStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<pr>/<head>.json`.
    pub fn json_path(&self, rev: &Revision) -> io::Result<PathBuf> {
        self.path(rev, "json")
    }

    /// `<dir>/<pr>/<head>.html`.
    pub fn html_path(&self, rev: &Revision) -> io::Result<PathBuf> {
        self.path(rev, "html")
    }

    /// `<dir>/index.html`.
    pub fn index_path(&self) -> PathBuf {
        self.dir.join("index.html")
    }

    fn path(&self, rev: &Revision, ext: &str) -> io::Result<PathBuf> {
        check_head(&rev.head)?;
        Ok(self.dir.join(rev.pr.to_string()).join(format!("{}.{ext}", rev.head)))
    }

    /// Write the report of `rev` (JSON, HTML and the revision sidecar), then rebuild the index.
    pub fn write(&self, rev: &Revision, report: &CheckReport) -> io::Result<WriteOutcome> {
        let json = self.json_path(rev)?;
        let html_path = self.html_path(rev)?;
        let sidecar = self.path(rev, "rev.json")?;
        if let Some(parent) = json.parent() {
            fs::create_dir_all(parent)?;
        }
        let outcome = if fs::symlink_metadata(&json).is_ok() { WriteOutcome::Replaced } else { WriteOutcome::Created };
        let document = serde_json::to_string_pretty(report).map_err(io::Error::other)?;
        let revision = serde_json::to_string_pretty(rev).map_err(io::Error::other)?;
        // The JSON document last: it is what marks the report as written (the index and `superseded` go by it),
        // so a crash in between leaves at worst a page nobody links to, replaced on redelivery.
        atomic_write(&html_path, html::render_report(rev, report).as_bytes())?;
        atomic_write(&sidecar, revision.as_bytes())?;
        atomic_write(&json, document.as_bytes())?;
        self.regenerate_index()?;
        Ok(outcome)
    }

    /// Whether a report for a revision of the same pull request emitted later than `rev` is already written:
    /// publishing `rev` would then put an outdated verdict over a current one. Unreadable state counts as not
    /// superseded (writing is the safe default: a stale report is replaced by the next revision anyway).
    pub fn superseded(&self, rev: &Revision) -> bool {
        let Ok(entries) = fs::read_dir(self.dir.join(rev.pr.to_string())) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let name = entry.file_name();
            let Some(head) = name.to_str().and_then(|n| n.strip_suffix(".rev.json")) else {
                return false;
            };
            if check_head(head).is_err() || !entry.path().with_file_name(format!("{head}.json")).is_file() {
                return false;
            }
            let Ok(text) = fs::read(entry.path()) else {
                return false;
            };
            match serde_json::from_slice::<Revision>(&text) {
                Ok(other) => other.repository == rev.repository && other.emitted_at > rev.emitted_at,
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "unreadable revision sidecar");
                    false
                }
            }
        })
    }

    /// Rebuild `index.html` from the report documents on disk, newest first by modification time.
    pub fn regenerate_index(&self) -> io::Result<()> {
        // Another publisher may write a report between our listing and our rename and have its index
        // replaced by ours: list again after the rename, and rebuild while the listing moved.
        let mut listed = self.list()?;
        for _ in 0..INDEX_ATTEMPTS {
            let entries: Vec<IndexEntry> = listed.iter().filter_map(read_entry).collect();
            fs::create_dir_all(&self.dir)?;
            atomic_write(&self.index_path(), html::render_index(&entries).as_bytes())?;
            let now = self.list()?;
            if now == listed {
                return Ok(());
            }
            listed = now;
        }
        Ok(())
    }

    /// The newest [`INDEX_LIMIT`] report documents: `<dir>/<pr>/<head>.json`.
    fn list(&self) -> io::Result<Vec<Listed>> {
        let top = match fs::read_dir(&self.dir) {
            Ok(top) => top,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for pr_dir in top {
            let pr_dir = pr_dir?;
            let Some(pr) = pr_dir.file_name().to_str().and_then(|n| n.parse::<u64>().ok().filter(|pr| pr.to_string() == n)) else {
                continue;
            };
            if !pr_dir.file_type()?.is_dir() {
                continue;
            }
            let files = match fs::read_dir(pr_dir.path()) {
                Ok(files) => files,
                // Removed by an operator while we list: nothing to index.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for file in files {
                let file = file?;
                let name = file.file_name();
                let Some(head) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                    continue;
                };
                // `<head>.rev.json` ends in `.json` too; its stem is not a SHA.
                if check_head(head).is_err() {
                    continue;
                }
                let Ok(meta) = file.metadata() else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                out.push(Listed { path: file.path(), pr, head: head.to_owned(), modified: meta.modified()? });
            }
        }
        out.sort_by(|a, b| b.modified.cmp(&a.modified).then(b.pr.cmp(&a.pr)).then(a.head.cmp(&b.head)));
        out.truncate(INDEX_LIMIT);
        Ok(out)
    }
}

fn read_entry(l: &Listed) -> Option<IndexEntry> {
    let text = match fs::read(&l.path) {
        Ok(text) => text,
        Err(e) => {
            tracing::warn!(path = %l.path.display(), error = %e, "report vanished while indexing");
            return None;
        }
    };
    match serde_json::from_slice::<Summary>(&text) {
        Ok(s) => Some(IndexEntry {
            pr: l.pr,
            head: l.head.clone(),
            verdict: s.verdict,
            reason: s.reason,
            written_at: l.modified.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        }),
        Err(e) => {
            tracing::warn!(path = %l.path.display(), error = %e, "unreadable report left out of the index");
            None
        }
    }
}

/// A head becomes a file name: only a full SHA is accepted, so nothing can climb out of the store.
fn check_head(head: &str) -> io::Result<()> {
    if head.len() == 40 && head.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("head {head:?} is not a 40-hex-digit commit SHA")))
    }
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::time::Duration;

    fn rev(pr: u64, head: char, emitted_at: f64) -> Revision {
        Revision {
            repository: "gentoo".into(),
            pr,
            head: head.to_string().repeat(40),
            base_branch: "master".into(),
            base: "b".repeat(40),
            priority: false,
            emitted_at,
        }
    }

    fn report(rev: &Revision, verdict: Verdict, reason: &str) -> CheckReport {
        let mut r = CheckReport::error(&rev.repository, &rev.base, &rev.head, reason);
        r.verdict = verdict;
        r
    }

    fn names(dir: &Path) -> BTreeSet<String> {
        fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect()
    }

    fn set_mtime(path: &Path, secs: u64) {
        let f = fs::File::options().write(true).open(path).expect("open");
        f.set_modified(UNIX_EPOCH + Duration::from_secs(secs)).expect("set mtime");
    }

    #[test]
    fn writing_twice_leaves_one_report_and_says_replaced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ReportStore::new(tmp.path().join("reports"));
        let r = rev(42, 'a', 1.0);
        let first = report(&r, Verdict::Fail, "1 new issue");
        assert_eq!(store.write(&r, &first).expect("write"), WriteOutcome::Created);
        let second = report(&r, Verdict::Pass, "no new issue");
        assert_eq!(store.write(&r, &second).expect("write"), WriteOutcome::Replaced);

        let head = "a".repeat(40);
        let expected: BTreeSet<String> = [format!("{head}.json"), format!("{head}.html"), format!("{head}.rev.json")].into();
        assert_eq!(names(&store.dir().join("42")), expected, "no temporary file left behind");
        assert_eq!(names(store.dir()), BTreeSet::from(["42".to_string(), "index.html".to_string()]));

        let doc = fs::read_to_string(store.json_path(&r).expect("path")).expect("json");
        assert_eq!(doc, serde_json::to_string_pretty(&second).expect("serialise"));
        let back: CheckReport = serde_json::from_str(&doc).expect("report document");
        assert_eq!(back.verdict, Verdict::Pass);
        let page = fs::read_to_string(store.html_path(&r).expect("path")).expect("html");
        assert!(page.contains("no new issue"));
        let sidecar: Revision =
            serde_json::from_slice(&fs::read(store.dir().join("42").join(format!("{head}.rev.json"))).expect("sidecar")).expect("revision");
        assert_eq!(sidecar, r);

        let index = fs::read_to_string(store.index_path()).expect("index");
        assert_eq!(index.matches(&format!("href=\"42/{head}.html\"")).count(), 2, "one row (two links to it): {index}");
        assert!(index.contains("no new issue") && !index.contains("1 new issue"));
    }

    #[test]
    fn index_lists_reports_newest_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ReportStore::new(tmp.path().to_path_buf());
        let revs = [rev(1, 'a', 1.0), rev(2, 'b', 1.0), rev(3, 'c', 1.0)];
        for (r, mtime) in revs.iter().zip([3_000, 1_000, 2_000]) {
            store.write(r, &report(r, Verdict::Pass, &format!("pr {}", r.pr))).expect("write");
            set_mtime(&store.json_path(r).expect("path"), mtime);
        }
        // Noise the index must ignore.
        fs::write(store.dir().join("notes.json"), "{}").expect("write");
        fs::create_dir_all(store.dir().join("drafts")).expect("mkdir");
        fs::write(store.dir().join("1").join(format!("{}.json", "d".repeat(40))), "not json").expect("write");
        store.regenerate_index().expect("index");

        let index = fs::read_to_string(store.index_path()).expect("index");
        let pos =
            |r: &Revision| index.find(&format!("href=\"{}/{}.html\"", r.pr, r.head)).unwrap_or_else(|| panic!("{} missing: {index}", r.pr));
        assert!(pos(&revs[0]) < pos(&revs[2]) && pos(&revs[2]) < pos(&revs[1]), "{index}");
        assert!(!index.contains(&"d".repeat(40)), "an unreadable report is left out");
        assert!(index.contains("1970-01-01 00:50"), "{index}");
    }

    #[test]
    fn index_keeps_the_newest_200() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ReportStore::new(tmp.path().to_path_buf());
        for pr in 0..(INDEX_LIMIT as u64 + 5) {
            let dir = store.dir().join(pr.to_string());
            fs::create_dir_all(&dir).expect("mkdir");
            let path = dir.join(format!("{:040x}.json", pr));
            fs::write(&path, r#"{"verdict": "pass", "reason": "ok"}"#).expect("write");
            set_mtime(&path, 1_000 + pr);
        }
        store.regenerate_index().expect("index");
        let index = fs::read_to_string(store.index_path()).expect("index");
        assert_eq!(index.matches("<tr><td>").count(), INDEX_LIMIT);
        assert!(index.contains(&format!("href=\"204/{:040x}.html\"", 204)));
        assert!(!index.contains(&format!("href=\"4/{:040x}.html\"", 4)), "the oldest fall off");
    }

    #[test]
    fn a_head_that_is_not_a_sha_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ReportStore::new(tmp.path().join("reports"));
        let g = "g".repeat(40);
        let slash = format!("../{}", "a".repeat(37));
        for head in ["../../etc/passwd", "abc", &"a".repeat(41), &g, &slash, ""] {
            let mut r = rev(1, 'a', 1.0);
            r.head = head.into();
            let err = store.write(&r, &report(&r, Verdict::Pass, "ok")).expect_err(head);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{head}");
        }
        assert!(!store.dir().exists(), "nothing written");
    }

    #[test]
    fn a_revision_emitted_before_a_written_one_is_superseded() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = ReportStore::new(tmp.path().to_path_buf());
        let written = rev(7, 'a', 100.0);
        assert!(!store.superseded(&written), "nothing written yet");
        store.write(&written, &report(&written, Verdict::Pass, "ok")).expect("write");

        assert!(store.superseded(&rev(7, 'b', 50.0)), "an older head of the same PR");
        assert!(store.superseded(&rev(7, 'a', 50.0)), "an older check of the same head");
        assert!(!store.superseded(&written), "a redelivery of the written revision is rewritten");
        assert!(!store.superseded(&rev(7, 'c', 150.0)), "a newer head");
        assert!(!store.superseded(&rev(8, 'b', 50.0)), "another PR");
        let mut other_repo = rev(7, 'b', 50.0);
        other_repo.repository = "guru".into();
        assert!(!store.superseded(&other_repo));

        // A sidecar whose report was never written (a crash in between) does not count.
        let orphan = rev(9, 'e', 500.0);
        fs::create_dir_all(store.dir().join("9")).expect("mkdir");
        fs::write(store.dir().join("9").join(format!("{}.rev.json", orphan.head)), serde_json::to_vec(&orphan).expect("json"))
            .expect("write");
        assert!(!store.superseded(&rev(9, 'f', 1.0)));
    }
}
