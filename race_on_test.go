//go:build race

package dirstore_test

// underRace is set when the race detector is on: slow tests scale down.
const underRace = true
