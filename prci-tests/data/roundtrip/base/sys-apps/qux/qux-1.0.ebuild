# Copyright 2024 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

DESCRIPTION="System tool of the roundtrip test repository"
HOMEPAGE="https://example.org/qux"

LICENSE="GPL-2"
SLOT="0"
KEYWORDS="amd64 x86"
IUSE="gui test"
RESTRICT="!test? ( test )"

RDEPEND="gui? ( dev-libs/multi:2 )"
DEPEND="${RDEPEND}"
BDEPEND="test? ( dev-libs/bar )"
