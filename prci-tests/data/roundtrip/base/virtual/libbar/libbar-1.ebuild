# Copyright 2024 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

EAPI=8

DESCRIPTION="Virtual for the example library of the roundtrip test repository"
SLOT="0"
KEYWORDS="amd64 x86"

RDEPEND="|| ( dev-libs/bar dev-libs/multi:2 )"
