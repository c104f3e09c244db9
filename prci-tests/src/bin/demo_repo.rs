//! `prci-demo-repo DIR`: make a small ebuild repository with three pull-request branches (clean, broken, fixing) for the quick start.

use fixtures::{Ebuild, Repo};

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: prci-demo-repo DIR");
        std::process::exit(2);
    };
    let path = std::path::Path::new(&dir);
    if path.exists() && std::fs::read_dir(path).map(|mut d| d.next().is_some()).unwrap_or(true) {
        eprintln!("prci-demo-repo: {dir} exists and is not empty");
        std::process::exit(2);
    }
    let r = Repo::standalone_at(path, "demo");
    r.add_package("app-misc", "hello", "1.0", &Ebuild::default());
    r.add_package("dev-libs", "libdemo", "1.0", &Ebuild { license: "NoSuchLicense".into(), ..Ebuild::default() });
    r.add_package("app-misc", "client", "1.0", &Ebuild::default().with_rdepend("dev-libs/libdemo"));
    let base = r.commit("demo repository: dev-libs/libdemo has a pre-existing issue");
    let pulls = [
        ("clean", "app-misc/hello: bump to 1.1", vec![("app-misc", "hello", "1.1", Ebuild::default())]),
        (
            "broken",
            "app-misc/hello: add a keyword nobody knows",
            vec![("app-misc", "hello", "1.0", Ebuild { keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() })],
        ),
        ("fixing", "dev-libs/libdemo: fix the license", vec![("dev-libs", "libdemo", "1.0", Ebuild::default())]),
    ];
    for (n, (name, message, changes)) in pulls.into_iter().enumerate() {
        r.switch("master");
        r.branch(name);
        r.switch(name);
        for (cat, pkg, ver, ebuild) in &changes {
            r.add_package(cat, pkg, ver, ebuild);
        }
        let sha = r.commit(message);
        r.set_ref(&format!("refs/pull/{}/head", n + 1), &sha);
    }
    r.switch("master");
    println!("{base}");
}
