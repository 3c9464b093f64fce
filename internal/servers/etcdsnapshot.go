package servers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// snapshotClient asks a member for a snapshot directly (never through a
// proxy); the bound is a hang guard.
var snapshotClient = &http.Client{
	Timeout:   clusterPatience,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

// Snapshot saves the cluster's data now into the file path, as `etcdctl
// snapshot save` does (the file Restore takes): it asks the member leading
// the cluster for a snapshot through etcd's HTTP gateway to its v3 API
// (POST /v3/maintenance/snapshot), so a module without an etcd client can
// take one. The file ends with the checksum etcd appends, which `etcdutl
// snapshot restore` verifies.
func (c *EtcdCluster) Snapshot(path string) error {
	l, err := c.WaitLeader(-1, clusterPatience)
	if err != nil {
		return fmt.Errorf("servers: snapshot: %w", err)
	}
	url := c.members[l].client + "/v3/maintenance/snapshot"
	resp, err := snapshotClient.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		return fmt.Errorf("servers: snapshot from %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("servers: snapshot from %s: %s: %s", url, resp.Status, body)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	// The gateway streams one JSON object per message: a chunk of the
	// database (base64, as JSON encodes bytes), or an error.
	dec := json.NewDecoder(resp.Body)
	var n int
	for {
		var msg struct {
			Result *struct {
				Blob []byte `json:"blob"`
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		err := dec.Decode(&msg)
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && msg.Error != nil {
			err = errors.New(msg.Error.Message)
		}
		if err == nil && msg.Result != nil {
			_, err = f.Write(msg.Result.Blob)
			n += len(msg.Result.Blob)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("servers: snapshot from %s: %w", url, err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("servers: snapshot from %s: empty", url)
	}
	return nil
}
