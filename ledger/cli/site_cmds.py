"""``reserve report site OUT/``: write the static transparency site into a directory.

Thin shell: one short read (:func:`ledger.report.site_data.gather_site`), pure rendering
(:func:`ledger.report.site.render_site`), then the directory written whole or not at all
(:func:`ledger.files.replace_directory`). The plotting library is imported only when this
command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from ledger.cli.app import App, json_option, pass_app
from ledger.cli.app import escape_controls as printable
from ledger.errors import InvalidInput
from ledger.journal.entry import check_text


@click.command("site")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path), metavar="OUT")
@click.option("--title", default="Reserve transparency report", show_default=True, help="The page's title.")
@json_option
@pass_app
def site(app: App, out: Path, title: str, as_json: bool) -> int:
    """Write a static transparency site into directory OUT (created if missing).

    OUT/index.html shows the reserve over time, each vault's holdings, policy, descriptor and
    addresses handed out, monthly statements, the latest attestation with how to verify it and
    the latest signed checkpoint; the attestation and checkpoint documents are written beside
    it. The page works offline: no script, font, image or link to another site.
    """
    from ledger.cli.journal_cmds import journal_session, verifying_key
    from ledger.files import replace_directory
    from ledger.report.site import render_site
    from ledger.report.site_data import gather_site

    check_text(title, "--title")
    with journal_session(app, read_only=True) as s:
        data, findings = gather_site(s, title=title, public_key_pem=verifying_key(app, None))
    if findings:  # a page publishes only figures that verify
        click.echo(f"NOT VERIFIED: {len(findings)} problem(s); nothing written to {out}:", err=True)
        for finding in findings:
            click.echo(f"  - {printable(finding)}", err=True)
        return 1  # findings
    files = render_site(data)
    _check_out(out)
    replace_directory(out, files)  # the old site or the new one, never a mix
    if as_json:
        app.print_json(
            {
                "directory": str(out),
                "files": sorted(files),
                "as_of": data.as_of,
                "reserve_sat": data.reserve,
                "attestation_height": None if data.attestation is None else data.attestation.height,
                "checkpoint_tree_size": None if data.checkpoint is None else data.checkpoint.tree_size,
            }
        )
        return 0
    click.echo(f"wrote {out / 'index.html'} (after entry {data.as_of}; open it in any browser, offline)")
    for name in sorted(files):
        if name != "index.html":
            click.echo(f"  and {out / name}")
    return 0


def _check_out(out: Path) -> None:
    """Refuse a directory that is not new, empty or a site this command wrote (only the site's
    file names, and an index.html carrying its generator tag): nothing else is written over."""
    from ledger.report.site import GENERATOR, SITE_FILES

    if not out.is_dir():
        return
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    index = out / "index.html"
    try:
        ours = index.is_file() and not index.is_symlink() and GENERATOR in index.read_text(errors="replace")
    except OSError:
        ours = False
    strangers = [n for n in names if not SITE_FILES.match(n)]
    if strangers or not ours:
        shown = ", ".join(strangers[:5]) or "index.html"
        raise InvalidInput(
            f"{out} is not empty and not a site written by reserve report site (it holds {shown}); "
            "give a new or empty directory"
        )


COMMANDS: tuple[click.Command, ...] = (site,)
