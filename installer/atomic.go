package installer

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// writeAtomic makes path hold data with mode: a temporary file in the same
// directory, synced, then renamed over path, so containerd (or a crash)
// never sees a half-written file. It writes nothing when path already
// holds exactly data with that mode, and says whether it wrote.
func writeAtomic(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() == mode.Perm() {
			return false, nil
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode.Perm()); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, err
	}
	// The rename is durable once the directory is.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}

// fileState is what a file held before the installer changed it, to put
// it back on failure.
type fileState struct {
	path   string
	data   []byte
	mode   os.FileMode
	exists bool
}

func snapshot(path string) (fileState, error) {
	st, err := os.Stat(path)
	if os.IsNotExist(err) {
		return fileState{path: path}, nil
	}
	if err != nil {
		return fileState{}, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fileState{}, err
	}
	return fileState{path: path, data: data, mode: st.Mode(), exists: true}, nil
}

// restore puts the file back as snapshot found it.
func (s fileState) restore() error {
	if !s.exists {
		if err := os.Remove(s.path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	_, err := writeAtomic(s.path, s.data, s.mode)
	return err
}
