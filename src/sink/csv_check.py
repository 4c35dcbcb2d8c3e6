#!/usr/bin/python3
"""Reads a Relay CSV file with Python's csv module and prints it as JSON for sink_csv_test.

Output: {"header": [...], "rows": [[cell, ...], ...], "f32": [[bits or null, ...], ...]} where
f32 holds, for every cell that parses as a float, the IEEE-754 single bits of float(cell).
"""
import csv
import json
import struct
import sys


def f32_bits(cell):
    try:
        return struct.unpack("<I", struct.pack("<f", float(cell)))[0]
    except (ValueError, OverflowError):
        return None


def main():
    with open(sys.argv[1], newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [row for row in reader]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            sys.exit("row %d has %d cells, header has %d" % (i, len(row), len(header)))
    json.dump({"header": header, "rows": rows,
               "f32": [[f32_bits(c) for c in row] for row in rows]}, sys.stdout)


main()
