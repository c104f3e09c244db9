# Copyright 2024 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

inherit roundtrip-utils

DESCRIPTION="Example application of the roundtrip test repository"
HOMEPAGE="https://example.org/foo"
SRC_URI="mirror://roundtrip/${P}.tar.gz"

LICENSE="GPL-2"
SLOT="0"
KEYWORDS="amd64 x86"
IUSE="ssl"

RDEPEND="
	dev-libs/bar
	ssl? ( sys-apps/qux )
"
DEPEND="${RDEPEND}"

src_install() {
	default
	rt_install_readme README
}
