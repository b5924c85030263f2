package suite

// The groups, in table order.
const (
	groupStore   = "Store"
	groupMemFile = "MemFile"
	groupStream  = "Stream"
	groupBuffer  = "Buffer"
	groupBlobs   = "Blobs"
	groupEngines = "I/O engines"
)

var groupTitles = map[string]string{
	groupStore:   "Store vs diskv vs plain os files",
	groupMemFile: "MemFile vs afero MemMapFs vs pebble vfs.NewMem vs bytes",
	groupStream:  "Stream cache vs reading the file directly",
	groupBuffer:  "Buffer vs golang-lru, and vs golang-lru + diskv spill",
	groupBlobs:   "Store vs the databases users would pick for blobs: bbolt, pebble, SQLite",
	groupEngines: "I/O engines (uring) vs fio and the sync engine",
}

// AllRows returns every row, in table order; manyKeys is the number of keys
// of the list and reopen rows.
func AllRows(manyKeys int) []*Row {
	var rows []*Row
	rows = append(rows, storeRows(manyKeys)...)
	rows = append(rows, blobRows(manyKeys)...)
	rows = append(rows, memFileRows()...)
	rows = append(rows, streamRows()...)
	rows = append(rows, bufferRows()...)
	rows = append(rows, engineRows()...)
	return rows
}
