// Command bench compares dirstore with the libraries its users would pick
// instead (diskv, afero, pebble's in-memory files, golang-lru, fio) on the
// same data, on the same machine, in one run, and prints a markdown table of
// median throughputs and ratios. See README.md.
//
//	cd bench && go run . [-rounds 5] [-only REGEXP] [-svg PATH]
package main

import "github.com/dirstore/dirstore/bench/internal/suite"

func main() { suite.Main() }
