package dirstore

import "log/slog"

// keyAttr is the "key" attribute of a log record; a key longer than 120
// bytes is cut, as in error messages.
func keyAttr(key string) slog.Attr {
	if len(key) > 120 {
		return slog.String("key", key[:100]+"...")
	}
	return slog.String("key", key)
}
