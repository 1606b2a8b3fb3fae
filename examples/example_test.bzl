"""example_test: runs an example binary and checks what it prints."""

def example_test(name, example, size = "small", **kwargs):
    """Checks `example`'s stdout+stderr against testdata/<example>.expected.

    The expected file holds one extended regular expression per output line
    (matched whole); a first line "# unordered" compares the lines as a
    multiset, for examples whose processes print in any order, and a line
    "# per-cpu K REGEX" stands for REGEX repeated K * cpu_count() times.
    """
    native.cc_test(
        name = name,
        size = size,
        args = [
            "$(rootpath :%s)" % example,
            "$(rootpath :testdata/%s.expected)" % example,
        ],
        data = [
            ":" + example,
            ":testdata/%s.expected" % example,
        ],
        deps = ["//tests:example_check"],
        **kwargs
    )
