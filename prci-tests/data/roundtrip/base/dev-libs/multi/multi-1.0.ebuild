# Copyright 2024 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

DESCRIPTION="Slotted library of the roundtrip test repository"
HOMEPAGE="https://example.org/multi"

LICENSE="MIT"
SLOT="1"
KEYWORDS="amd64 x86"
