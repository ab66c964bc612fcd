"""Storage selectors compiled, type-checked and evaluated as the Proxmox provider's cel-go does it.

The pools below are a node's ``GET /nodes/{node}/storage`` answer, in API order. Each selector
in the table either picks a pool (the first match) or fails with the error the provider would
log; the error strings marked "research" are the real ones from the provider's issues and
cel-go's sources (research/omni.md §2.4).
"""

from __future__ import annotations

import pytest

from runbook_lib import cel

GIB = 1024 ** 3
POOLS = [
    {"storage": "local", "type": "dir", "content": "iso,vztmpl,backup", "enabled": 1, "active": 1, "avail": 80 * GIB},
    {"storage": "local-lvm", "type": "lvmthin", "content": "images,rootdir", "enabled": 1, "active": 1,
     "avail": 600 * GIB},
    {"storage": "vm_ssd", "type": "rbd", "content": "images,rootdir", "enabled": 1, "active": 1, "avail": 1500 * GIB},
]
OPERAND_SET = ("{'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, "
               "BYTES, IDENTIFIER}")

# selector -> (winner, error). An error is matched exactly; None means "no error".
TABLE = {
    # valid selectors and what the provider picks (first match in API order)
    'name == "vm_ssd"': ("vm_ssd", None),
    'name == "local-lvm"': ("local-lvm", None),
    'storageType == "lvmthin"': ("local-lvm", None),
    'name in ["nvme", "local-lvm"]': ("local-lvm", None),
    'name in ["vm_ssd", "local-lvm"]': ("local-lvm", None),  # API order decides, not list order
    'name.startsWith("vm")': ("vm_ssd", None),
    'name.endsWith("lvm") || name.contains("ssd")': ("local-lvm", None),
    'storageType == "rbd" && availableSpace > 1000000000000u': ("vm_ssd", None),
    'availableSpace > 500000000000u': ("local-lvm", None),
    'availableSpace >= 1u': ("local", None),
    'node == "pve1" && name.matches("^vm_")': ("vm_ssd", None),
    'storageType != "dir" && size(name) > 6': ("local-lvm", None),
    'int(availableSpace) > 1000000000000': ("vm_ssd", None),  # converting makes an int comparison legal
    'node == "pve1" ? name == "vm_ssd" : name == "local-lvm"': ("vm_ssd", None),
    '["vm_ssd"].exists(p, p == name)': ("vm_ssd", None),
    "name == 'vm_ssd' // single quotes and a comment": ("vm_ssd", None),
    # valid, but nothing matches: the provider's own error, %q-quoted
    'name == "nvme"': (None, 'failed to pick the disk: no matches for the condition "name == \\"nvme\\""'),
    'storageType == "zfspool" && availableSpace > 50000000000u':
        (None, 'failed to pick the disk: no matches for the condition '
               '"storageType == \\"zfspool\\" && availableSpace > 50000000000u"'),
    # research: the empty selector (key missing on old providers, or storage_selector: "")
    "": (None, f"ERROR: <input>:1:0: Syntax error: mismatched input '<EOF>' expecting {OPERAND_SET}"),
    # research: a quoted pool name is a string, not a condition
    '"local-lvm"': (None, "expression output type is string, expected bool"),
    # research: `type` is CEL's type identifier
    'type == "lvmthin"': (None, "ERROR: <input>:1:6: found no matching overload for '_==_' applied to "
                                "'(type(type), string)'\n | type == \"lvmthin\"\n | .....^"),
    # research: a storage field the provider never declares
    "enabled == true": (None, "ERROR: <input>:1:1: undeclared reference to 'enabled' (in container '')\n"
                              " | enabled == true\n | ^"),
    # research: a bare pool name parses as `local - lvm`
    "local-lvm": (None, "ERROR: <input>:1:1: undeclared reference to 'local' (in container '')\n | local-lvm\n | ^\n"
                        "ERROR: <input>:1:7: undeclared reference to 'lvm' (in container '')\n | local-lvm\n"
                        " | ......^"),
    "name == vm_ssd": (None, "ERROR: <input>:1:9: undeclared reference to 'vm_ssd' (in container '')\n"
                             " | name == vm_ssd\n | ........^"),
    # uint against int: a default cel.NewEnv has no cross-type numeric overloads
    "availableSpace > 100000000000": (None, "ERROR: <input>:1:16: found no matching overload for '_>_' applied to "
                                            "'(uint, int)'\n | availableSpace > 100000000000\n"
                                            " | ...............^"),
    "availableSpace == 0": (None, "ERROR: <input>:1:16: found no matching overload for '_==_' applied to "
                                  "'(uint, int)'\n | availableSpace == 0\n | ...............^"),
    "availableSpace > 1.5": (None, "ERROR: <input>:1:16: found no matching overload for '_>_' applied to "
                                   "'(uint, double)'\n | availableSpace > 1.5\n | ...............^"),
    'name.startsWith(1)': (None, "ERROR: <input>:1:16: found no matching overload for 'startsWith' applied to "
                                 "'string.(int)'\n | name.startsWith(1)\n | ...............^"),
    "availableSpace": (None, "expression output type is uint, expected bool"),
    "name": (None, "expression output type is string, expected bool"),
    "dyn(true)": (None, "expression output type is dyn, expected bool"),
    "name ==": (None, f"ERROR: <input>:1:8: Syntax error: mismatched input '<EOF>' expecting {OPERAND_SET}\n"
                      " | name ==\n | .......^"),
    '(name == "vm_ssd"': (None, "ERROR: <input>:1:18: Syntax error: missing ')' at '<EOF>'\n"
                               ' | (name == "vm_ssd"\n | .................^'),
    'name = "vm_ssd"': (None, "ERROR: <input>:1:6: Syntax error: token recognition error at: '= '\n"
                              ' | name = "vm_ssd"\n | .....^'),
    "if": (None, "ERROR: <input>:1:1: reserved identifier: if\n | if\n | ^"),
    "1 + +": (None, f"ERROR: <input>:1:5: Syntax error: mismatched input '+' expecting {OPERAND_SET}\n"
                    " | 1 + +\n | ....^"),
}


@pytest.mark.parametrize("selector", list(TABLE))
def test_selector_table(selector):
    winner, error = TABLE[selector]
    result = cel.pick(cel.compile_selector(selector), "pve1", POOLS)
    assert result.winner == winner
    assert result.error == (error or "")


def test_the_table_covers_what_the_issue_asks_for():
    sels = list(TABLE)
    assert len(sels) >= 25
    assert any("type ==" in s for s in sels) and "" in sels and any(" in [" in s for s in sels)
    assert any("startsWith" in s for s in sels) and any("availableSpace > 1000" in s for s in sels)


def test_celpy_alone_would_accept_type_and_cel_go_does_not():
    import celpy

    env = celpy.Environment()
    assert env.program(env.compile('type == "rbd"')).evaluate({}) is not None  # celpy: just false
    sel = cel.compile_selector('type == "rbd"')
    assert not sel.ok and sel.stage == "check"


def test_several_errors_are_sorted_by_position():
    sel = cel.compile_selector('type == "rbd" && enabled')
    lines = [line for line in sel.error.split("\n") if line.startswith("ERROR")]
    assert lines == ["ERROR: <input>:1:6: found no matching overload for '_==_' applied to '(type(type), string)'",
                     "ERROR: <input>:1:18: undeclared reference to 'enabled' (in container '')"]


def test_multi_line_selectors_report_their_line():
    sel = cel.compile_selector('name == "vm_ssd"\n  && enabled')
    assert sel.error == ("ERROR: <input>:2:6: undeclared reference to 'enabled' (in container '')\n"
                         " |   && enabled\n | .....^")


def test_wide_characters_get_wide_dots_as_in_cel_go():
    sel = cel.compile_selector('name == "😁" && x')
    assert sel.error.endswith(' | name == "😁" && x\n | .........．.....^')


def test_first_match_wins_and_later_matches_are_shadowed():
    result = cel.pick(cel.compile_selector("availableSpace > 500000000000u"), "pve1", POOLS)
    assert result.winner == "local-lvm" and result.matched == ["local-lvm", "vm_ssd"]
    assert result.shadowed == ["vm_ssd"]
    assert [r.first for r in result.rows] == [False, True, False]


def test_no_storage_at_all_is_no_match_even_for_a_broken_selector():
    # the provider's loop never runs, so the compile error never surfaces
    result = cel.pick(cel.compile_selector('type == "rbd"'), "pve1", [])
    assert result.error == 'failed to pick the disk: no matches for the condition "type == \\"rbd\\""'


def test_an_evaluation_error_stops_the_loop_like_the_provider():
    sel = cel.compile_selector('name == "local-lvm" || 1 / (size(name) - 5) == 0')
    assert sel.ok
    result = cel.pick(sel, "pve1", POOLS)  # "local" has 5 letters: division by zero on the first row
    assert result.winner is None and result.error
    assert result.rows[1].matched is True  # still evaluated for display


def test_the_node_variable_is_the_node_evaluated():
    sel = cel.compile_selector('node == "pve2" && name == "vm_ssd" || node != "pve2" && name == "local-lvm"')
    assert cel.pick(sel, "pve2", POOLS).winner == "vm_ssd"
    assert cel.pick(sel, "pve1", POOLS).winner == "local-lvm"


def test_explain_names_the_deciding_term_and_the_values():
    sel = cel.compile_selector('storageType == "rbd" && availableSpace > 500000000000u')
    assert cel.explain(sel, "pve1", POOLS[1]) == 'no match: storageType == "rbd" is false (storageType = "lvmthin")'
    why = cel.explain(sel, "pve1", POOLS[2])
    assert why.startswith('matches: storageType == "rbd" is true') and "1500.0 GiB" in why


def test_literals_know_what_they_are_compared_with():
    sel = cel.compile_selector('name in ["vm-ssd", "x"] && storageType == "rbd" || name.startsWith("Loc")')
    got = [(lit.value, lit.role, lit.op) for lit in sel.literals()]
    assert got == [("vm-ssd", "name", "@in"), ("x", "name", "@in"), ("rbd", "storageType", "_==_"),
                   ("Loc", "name", "startsWith")]


def test_results_are_memoised_on_the_variables_read():
    cel.compile_selector.cache_clear()  # a fresh object, so its memo starts empty
    sel = cel.compile_selector('name == "vm_ssd"')
    calls = []
    run = sel._run
    sel._run = lambda values: calls.append(values["node"]) or run(values)
    for node in ("pve1", "pve2", "pve3"):
        cel.pick(sel, node, POOLS)
    assert len(calls) == 3  # one per distinct name, not one per (node, storage)


@pytest.mark.parametrize("text, quoted", [
    ('name == "nvme"', '"name == \\"nvme\\""'),
    ("a\tb\\c", '"a\\tb\\\\c"'),
    ("\x01é", '"\\x01é"'),
])
def test_go_quote(text, quoted):
    assert cel.go_quote(text) == quoted


def test_the_interpreter_is_used_when_celpy_parser_was_built_for_it():
    """celpy keeps one parser per process; built for its interpreter first, evaluation still works."""
    import subprocess
    import sys

    code = ("import celpy; celpy.Environment()\n"
            "from runbook_lib import cel\n"
            "from runbook_lib.cel import selector\n"
            "s = cel.compile_selector('name == \"vm_ssd\"')\n"
            "print(cel.pick(s, 'pve1', [{'storage': 'local'}, {'storage': 'vm_ssd'}]).winner,"
            " selector._ENV.runner_class.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["vm_ssd", "InterpretedRunner"]
