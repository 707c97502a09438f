package installer

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI talks to containerd's CRI service on its socket.
type CRI struct {
	conn *grpc.ClientConn
	rt   cri.RuntimeServiceClient
}

// DialCRI connects to CRI at socket (a path on this side of the host root).
func DialCRI(socket string) (*CRI, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI at %s: %w", socket, err)
	}
	return &CRI{conn: conn, rt: cri.NewRuntimeServiceClient(conn)}, nil
}

func (c *CRI) Close() error { return c.conn.Close() }

// Handlers lists the runtime handlers CRI serves with the runtime type
// each has in CRI's running config (the shim's path for ours).
func (c *CRI) Handlers(ctx context.Context) (map[string]string, error) {
	st, err := c.rt.Status(ctx, &cri.StatusRequest{Verbose: true})
	if err != nil {
		return nil, fmt.Errorf("CRI status: %w", err)
	}
	return ParseStatus(st)
}

// ParseStatus reads a verbose CRI status: the handlers CRI lists in
// runtimeHandlers (what `crictl info` shows), each with its runtime type
// from the config CRI runs with (its info "config"). A handler without a
// runtime table there maps to "".
func ParseStatus(st *cri.StatusResponse) (map[string]string, error) {
	var config struct {
		Containerd struct {
			Runtimes map[string]struct {
				RuntimeType string `json:"runtimeType"`
			} `json:"runtimes"`
		} `json:"containerd"`
	}
	if raw, ok := st.GetInfo()["config"]; ok {
		if err := json.Unmarshal([]byte(raw), &config); err != nil {
			return nil, fmt.Errorf("CRI status info config: %w", err)
		}
	}
	out := map[string]string{}
	for _, h := range st.GetRuntimeHandlers() {
		if h.GetName() == "" {
			continue // the default handler, also listed by its name
		}
		out[h.GetName()] = config.Containerd.Runtimes[h.GetName()].RuntimeType
	}
	return out, nil
}

// missingHandlers are the handlers not served with runtime type shim.
func missingHandlers(live map[string]string, handlers []string, shim string) []string {
	var missing []string
	for _, h := range handlers {
		if rt, ok := live[h]; !ok || rt != shim {
			missing = append(missing, h)
		}
	}
	return missing
}

// PodsOn lists the pod sandboxes (namespace/name id) whose runtime handler
// is one of handlers.
func (c *CRI) PodsOn(ctx context.Context, handlers []string) ([]string, error) {
	resp, err := c.rt.ListPodSandbox(ctx, &cri.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI list pod sandboxes: %w", err)
	}
	ours := map[string]bool{}
	for _, h := range handlers {
		ours[h] = true
	}
	var pods []string
	for _, s := range resp.GetItems() {
		if ours[s.GetRuntimeHandler()] {
			m := s.GetMetadata()
			pods = append(pods, fmt.Sprintf("%s/%s (sandbox %s, handler %s)", m.GetNamespace(), m.GetName(), s.GetId(), s.GetRuntimeHandler()))
		}
	}
	sort.Strings(pods)
	return pods, nil
}
