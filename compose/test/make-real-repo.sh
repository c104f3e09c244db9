#!/usr/bin/env bash
# Make the stack's test repository from the real tree in ../shared/data (Flatcar's portage-stable: 1,243 real Gentoo
# ebuilds, their eclasses, profiles and licences), as Gentoo's own git repository holds it: md5-cache not committed
# (regen makes it), no pull requests yet. compose/test/stack-bench.sh pushes real one-package pull requests on it
# with add_real_pr (a revision bump of an existing package).
# Usage: make-real-repo.sh DIR   -> DIR/work (the work tree) and DIR/git/repo.git (bare, what `git daemon` serves)
set -euo pipefail
dir=${1:?usage: make-real-repo.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
tarball=$(ls "$here"/../../../shared/data/portage-stable-*.tar.xz | head -n 1)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/work" "$dir/git/repo.git" "$dir/unpack"
mkdir -p "$dir/unpack" "$dir/git"
tar -xJf "$tarball" -C "$dir/unpack"
mv "$dir/unpack"/* "$dir/work"
rm -rf "$dir/unpack"
cd "$dir/work"
export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.com
git init --quiet --initial-branch=master .
echo /metadata/md5-cache >.gitignore
git add -A && git commit --quiet -m "$(basename "$tarball" .tar.xz), md5-cache not committed"
git clone --quiet --bare "$dir/work" "$dir/git/repo.git"
echo "$(git ls-files '*.ebuild' | wc -l) ebuilds on master"
