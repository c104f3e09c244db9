# Copyright 2024 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

DESCRIPTION="Library of the roundtrip test repository still in testing"
HOMEPAGE="https://example.org/baz"

LICENSE="GPL-2"
SLOT="0"
KEYWORDS="~amd64 ~x86"
