# Copyright 2024 Gentoo Authors
# Distributed under the terms of the GNU General Public License v2

# @ECLASS: unused-base.eclass
# @MAINTAINER:
# Roundtrip Team <roundtrip@example.org>
# @SUPPORTED_EAPIS: 8
# @BLURB: An eclass that no package inherits (kept on purpose).
# @DESCRIPTION:
# Nothing inherits this eclass.

case ${EAPI} in
	8) ;;
	*) die "${ECLASS}: EAPI ${EAPI:-0} not supported" ;;
esac

if [[ -z ${_UNUSED_BASE_ECLASS} ]]; then
_UNUSED_BASE_ECLASS=1

# @FUNCTION: unused_base_hello
# @DESCRIPTION:
# Print a greeting.
unused_base_hello() {
	einfo "hello"
}

fi
