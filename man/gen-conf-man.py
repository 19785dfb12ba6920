#!/usr/bin/env python3
"""Writes idlepool.conf(5) from `idlepoold --help-settings` (the very option table --help prints), so that the man
page never disagrees with the daemon. Usage: gen-conf-man.py IDLEPOOLD VERSION OUT"""
import subprocess
import sys


def roff(text: str) -> str:
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line.startswith((".", "'")) else line for line in text.split("\n"))


def main() -> int:
    daemon, version, out = sys.argv[1:4]
    table = subprocess.run([daemon, "--help-settings"], check=True, capture_output=True, text=True).stdout
    settings = []
    for line in table.splitlines():
        name, arg, description = line.split("\t", 2)
        settings.append((name, arg, description))
    if not settings:
        print("gen-conf-man: idlepoold --help-settings printed nothing", file=sys.stderr)
        return 1
    page = [
        f'.TH IDLEPOOL.CONF 5 "" "idlepool {version}" "File Formats"',
        ".SH NAME",
        "idlepool.conf \\- idlepoold's configuration file",
        ".SH SYNOPSIS",
        ".B /etc/idlepool/idlepool.conf",
        ".SH DESCRIPTION",
        "An INI file read by",
        ".BR idlepoold (8)",
        "at start and on",
        ".B systemctl reload idlepoold",
        "(SIGHUP). Every setting is optional and is written",
        ".IB name \" = \" value",
        "at the top of the file; the same setting given on idlepoold's command line as",
        ".BI \\-\\- name \" \" value",
        "wins over the file. Durations are N, Ns, Nm, Nh or Nd. An unknown or malformed setting is an error naming the",
        "file and line;",
        ".B idlepoold \\-\\-check\\-config",
        "checks the file without starting.",
        ".SH SETTINGS",
    ]
    for name, arg, description in settings:
        value = "" if not arg else (" = " + ("true|false" if arg.startswith("[") else "VALUE"))
        page += [".TP", f".B {roff(name)}{roff(value)}", roff(description[0].upper() + description[1:]) + "."]
    page += [
        ".SH POOL SECTIONS",
        "Settings for one pool go in a section named after its service unit, after the global settings:",
        ".PP",
        ".nf",
        ".RS",
        "[pool idlepool\\-php8.2\\-fpm@shop.service]",
        "idle\\-timeout = 30m",
        ".RE",
        ".fi",
        ".PP",
        "A section may set",
        ".BR idle\\-timeout ,",
        ".BR min\\-uptime ,",
        ".BR stall\\-timeout ,",
        ".B pin",
        "(true: never stop this pool) and",
        ".BR allow\\-abrupt\\-stop ;",
        "the others keep the global values.",
        ".SH FILES",
        ".TP",
        ".I /etc/idlepool/idlepool.conf",
        ".SH SEE ALSO",
        ".BR idlepoold (8),",
        ".BR idlepoolctl (1)",
    ]
    with open(out, "w") as f:
        f.write("\n".join(page) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
