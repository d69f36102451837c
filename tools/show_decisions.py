"""Pretty-prints `aegis eval` decision lines for the demo: one line per decision."""
import json
import sys

for line in sys.stdin:
    d = json.loads(line)
    a = d["audit"]
    what = a["tool"] + ("/" + a["action"] if "action" in a else "")
    extra = ""
    if d.get("approval"):
        extra = f"  approval {d['approval']['id']} by {', '.join(d['approval']['approvers']) or 'anyone'}"
    if a.get("marks"):
        extra += f"  marks [{', '.join(a['marks'])}]"
    if d["errors"]:
        extra += f"  ({len(d['errors'])} condition error{'s' if len(d['errors']) > 1 else ''})"
    print(f"  #{a['seq']:<3} {a['agent']:<22} {what:<24} {d['outcome']:<17} {', '.join(d['rules'])}{extra}")
    print(f"       reason: {d['reason']}")
