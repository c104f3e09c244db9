# Copyright 2024 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

# @ECLASS: roundtrip-utils.eclass
# @MAINTAINER:
# Roundtrip Team <roundtrip@example.org>
# @SUPPORTED_EAPIS: 7 8
# @BLURB: Small helpers for the roundtrip test repository.
# @DESCRIPTION:
# Helper functions used by the packages of the roundtrip test repository.

case ${EAPI} in
	7|8) ;;
	*) die "${ECLASS}: EAPI ${EAPI:-0} not supported" ;;
esac

if [[ -z ${_ROUNDTRIP_UTILS_ECLASS} ]]; then
_ROUNDTRIP_UTILS_ECLASS=1

# @FUNCTION: rt_install_readme
# @USAGE: <file>
# @DESCRIPTION:
# Install the given file as documentation.
rt_install_readme() {
	dodoc "${1}"
}

fi
