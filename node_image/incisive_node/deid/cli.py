"""`incisive-node deidentify`, `reidentify` and `keygen`."""

from __future__ import annotations

import json
import os
import pathlib
import sys

OPTION_NAMES = {
    "retain-longitudinal-modified-dates": "retain_longitudinal_modified_dates",
    "retain-patient-characteristics": "retain_patient_characteristics",
    "retain-device-identity": "retain_device_identity",
    "clean-descriptors": "clean_descriptors",
    "retain-safe-private": "retain_safe_private",
}
EXIT_REFUSED = 3


def add_parsers(sub) -> None:
    d = sub.add_parser("deidentify", help="de-identify a folder tree of DICOM files")
    d.add_argument("src", type=pathlib.Path)
    d.add_argument("out", type=pathlib.Path)
    d.add_argument("--quarantine", type=pathlib.Path, required=True, metavar="QDIR")
    d.add_argument("--profile", choices=["basic"], default="basic")
    d.add_argument("--option", action="append", default=[], choices=sorted(OPTION_NAMES),
                   help="add a PS3.15 option (repeatable)")
    d.add_argument("--without-option", action="append", default=[],
                   choices=sorted(OPTION_NAMES), help="drop an option that is on by default")
    d.add_argument("--safe-private", type=pathlib.Path,
                   help="JSON list of [group, creator, offset] kept by retain-safe-private")
    d.add_argument("--pixel-masks", type=pathlib.Path,
                   help='JSON {"Manufacturer|Model": [[x, y, w, h], ...]} (Clean Pixel Data)')
    d.add_argument("--workers", type=int, default=None)
    _key_args(d)
    d.add_argument("--mapping-db", type=pathlib.Path,
                   help="record the encrypted re-identification mapping here (needs Vault)")
    d.set_defaults(handler=deidentify_cmd)

    r = sub.add_parser("reidentify", help="look up the originals behind pseudonyms")
    r.add_argument("pseudonyms", nargs="+")
    r.add_argument("--mapping-db", type=pathlib.Path, required=True)
    r.add_argument("--vault-addr", default=os.environ.get("VAULT_ADDR"))
    r.add_argument("--audit-log", type=pathlib.Path, default=pathlib.Path("reidentify-audit.jsonl"))
    r.set_defaults(handler=reidentify_cmd)

    k = sub.add_parser("keygen", help="create a project key file (offline use only)")
    k.add_argument("--project", required=True)
    k.add_argument("--key-file", type=pathlib.Path, required=True)
    k.set_defaults(handler=keygen_cmd)


def _key_args(p) -> None:
    p.add_argument("--key-file", type=pathlib.Path, help="offline only: a local project key")
    p.add_argument("--vault-addr", default=os.environ.get("VAULT_ADDR"))
    p.add_argument("--project", help="project whose key to read from Vault")


def _options(args):
    from .model import Options

    flags = {v: getattr(Options(), v) for v in OPTION_NAMES.values()}
    flags.update({OPTION_NAMES[n]: True for n in args.option})
    flags.update({OPTION_NAMES[n]: False for n in args.without_option})
    safe = frozenset()
    if args.safe_private:
        safe = frozenset((int(g), str(c), int(o)) for g, c, o in
                         json.loads(args.safe_private.read_text()))
    masks = json.loads(args.pixel_masks.read_text()) if args.pixel_masks else {}
    return Options(**flags, safe_private=safe, pixel_masks=masks)


def deidentify_cmd(args) -> int:
    from . import batch, keys
    from .mapping import MappingStore

    if args.key_file:
        project_keys = keys.load_key_file(args.key_file)
        print(f"using a local key file ({args.key_file.name}): offline mode, not Vault",
              file=sys.stderr)
    elif args.vault_addr and args.project:
        client = keys.vault_client(args.vault_addr)
        project_keys = keys.load_from_vault(client, args.project)
    else:
        print("error: give --key-file, or --vault-addr with --project", file=sys.stderr)
        return 2
    on_mapping, store = None, None
    if args.mapping_db:
        if not args.vault_addr:
            print("error: --mapping-db needs Vault (--vault-addr)", file=sys.stderr)
            return 2
        store = MappingStore(args.mapping_db, keys.vault_client(args.vault_addr))
        on_mapping = store.put
    elif project_keys.source == "key-file":
        print("note: no --mapping-db: these outputs cannot be re-identified", file=sys.stderr)
    summary = batch.run(args.src, args.out, args.quarantine, project_keys, _options(args),
                        workers=args.workers, progress=sys.stderr.isatty(),
                        on_mapping=on_mapping)
    if store:
        store.close()
    print("\n".join(summary.lines()))
    return 0 if summary.accounted else 1


def reidentify_cmd(args) -> int:
    from .keys import vault_client
    from .mapping import MappingStore
    from .reidentify import Refused, reidentify

    if not args.vault_addr or not os.environ.get("VAULT_TOKEN"):
        print("refused: re-identification needs VAULT_ADDR and a VAULT_TOKEN holding the "
              "incisive-reidentify policy", file=sys.stderr)
        return EXIT_REFUSED
    store = MappingStore(args.mapping_db, vault_client(args.vault_addr))
    try:
        found = reidentify(args.pseudonyms, store, args.audit_log)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    finally:
        store.close()
    print(json.dumps(found, indent=2, sort_keys=True))
    missing = [p for p in args.pseudonyms if p not in found]
    if missing:
        print(f"not found: {len(missing)}", file=sys.stderr)
    return 0 if not missing else 1


def keygen_cmd(args) -> int:
    from .keys import ProjectKeys, write_key_file

    write_key_file(ProjectKeys.generate(args.project), args.key_file)
    print(f"wrote {args.key_file} (keep it secret; Vault is the place for production keys)")
    return 0
