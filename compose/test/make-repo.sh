#!/usr/bin/env bash
# Make a small ebuild repository for trying the compose stack, laid out like prci-tests' standalone fixture
# (prci-tests/src/repo.rs): profiles (repo_name, categories, arch.list, profiles.desc, one profile), metadata/layout.conf
# with no masters and thin manifests, the MIT licence, an eclass, and one package, on `master`; plus three pull
# requests as refs/pull/<N>/head:
#   1  adds sys-test/hello-1.0, clean                      -> pass
#   2  adds sys-test/broken-1.0 with an unknown licence    -> fail (a new error)
#   3  adds sys-test/hostile-1.0 whose global scope tries to write outside its tree and reach the network -> the
#      writes and the connection fail inside the sandbox (checked by stack-test.sh: no file appears anywhere)
# Usage: make-repo.sh DIR   -> DIR/work (the work tree) and DIR/git/repo.git (bare, what `git daemon` serves)
set -euo pipefail
dir=${1:?usage: make-repo.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/work" "$dir/git/repo.git"
mkdir -p "$dir/work" "$dir/git"
cd "$dir/work"
export GIT_AUTHOR_NAME=Test GIT_AUTHOR_EMAIL=test@example.com GIT_COMMITTER_NAME=Test GIT_COMMITTER_EMAIL=test@example.com
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
git init --quiet --initial-branch=master .

put() { mkdir -p "$(dirname "$1")"; cat >"$1"; }
header='# Copyright 2024 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2'
metadata_xml() {
    cat <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE pkgmetadata SYSTEM "https://www.gentoo.org/dtd/metadata.dtd">
<pkgmetadata>
	<maintainer type="person">
		<email>test@example.com</email>
		<name>Test</name>
	</maintainer>
</pkgmetadata>
XML
}
# ebuild CAT PKG LICENSE [EXTRA]
ebuild() {
    printf '%s\n\nEAPI=8\n\ninherit testlib\n\nDESCRIPTION="Test package %s/%s"\nHOMEPAGE="https://example.com/%s"\nLICENSE="%s"\nSLOT="0"\nKEYWORDS="~amd64"\n%s\nsrc_compile() {\n\ttestlib_hello\n}\n' \
        "$header" "$1" "$2" "$2" "$3" "${4:-}"
}
package() { # CAT PKG LICENSE [EXTRA]
    metadata_xml | put "$1/$2/metadata.xml"
    ebuild "$@" | put "$1/$2/$2-1.0.ebuild"
}

echo test | put profiles/repo_name
printf 'repo-name = test\nmasters =\nthin-manifests = true\nsign-manifests = false\ncache-formats = md5-dict\n' | put metadata/layout.conf
echo /metadata/md5-cache >.gitignore
echo amd64 | put profiles/arch.list
echo 'amd64 default/linux/amd64 stable' | put profiles/profiles.desc
echo 8 | put profiles/eapi
echo '# Global USE flags (none)' | put profiles/use.desc
echo 8 | put profiles/default/linux/amd64/eapi
printf 'ARCH="amd64"\nACCEPT_KEYWORDS="amd64"\n' | put profiles/default/linux/amd64/make.defaults
echo sys-test | put profiles/categories
echo 'MIT License (test fixture copy)' | put licenses/MIT
put eclass/testlib.eclass <<EOF2
$header

# @ECLASS: testlib.eclass
# @MAINTAINER:
# Test <test@example.com>
# @SUPPORTED_EAPIS: 7 8
# @BLURB: Test eclass testlib
# @DESCRIPTION:
# Test eclass testlib, written by the prci test fixtures.

case \${EAPI} in
	7|8) ;;
	*) die "\${ECLASS}: EAPI \${EAPI:-0} not supported" ;;
esac

# @FUNCTION: testlib_hello
# @DESCRIPTION:
# Test function testlib_hello.
testlib_hello() {
	echo "hello"
}
EOF2
package sys-test seed MIT
git add -A && git commit --quiet -m "Initial commit"

pr() { # N BRANCH MESSAGE
    git add -A
    GIT_AUTHOR_DATE="2024-01-01T00:0$1:00Z" GIT_COMMITTER_DATE="2024-01-01T00:0$1:00Z" git commit --quiet -m "$3"
    git update-ref "refs/pull/$1/head" HEAD
    git checkout --quiet master
    git branch --quiet -D "$2"
}
git checkout --quiet -b pr1 master
package sys-test hello MIT
pr 1 pr1 "sys-test/hello: new package"

git checkout --quiet -b pr2 master
package sys-test broken NO-SUCH-LICENSE
pr 2 pr2 "sys-test/broken: new package, with an unknown licence"

git checkout --quiet -b pr3 master
# Runs while pmaint sources the ebuild (regen) and pkgcheck scans it, as the sandbox's uid 1000: every write outside
# the tree's md5-cache and /tmp, and every connection, must fail.
package sys-test hostile MIT '
for f in /var/lib/prci/pwned /var/lib/prci/reports/pwned /srv/trees/pwned /home/prci/pwned /etc/prci/pwned; do
	echo pwned >"${f}" 2>/dev/null
done
(exec 3<>/dev/tcp/rabbitmq/5672) 2>/dev/null && echo pwned >/tmp/net-reached
'
pr 3 pr3 "sys-test/hostile: new package that tries to get out of its sandbox"

git clone --quiet --bare "$dir/work" "$dir/git/repo.git"
# refs/pull/* are not branches: the bare clone does not copy them.
for n in 1 2 3; do
    git -C "$dir/git/repo.git" fetch --quiet "$dir/work" "refs/pull/$n/head:refs/pull/$n/head"
done
git -C "$dir/git/repo.git" for-each-ref --format='%(refname) %(objectname:short)'
