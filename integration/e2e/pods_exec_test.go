//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	corev1 "k8s.io/api/core/v1"
)

// TestTwoContainers: a pod of two containers sharing localhost reaches
// Running and Ready (the readiness probe of one reaches the other on
// 127.0.0.1), and kubectl's exec, logs and attach work through the API
// server, the kubelet and CRI's stream server.
func TestTwoContainers(t *testing.T) {
	eachHandler(t, func(t *testing.T, ctx context.Context, handler string) {
		server := sh("server", `trap "exit 0" TERM; while true; do echo hello | nc -l -p 8080; done & wait`)
		client := sh("client", `trap "exit 0" TERM; echo client started; sleep 3600 & wait`)
		client.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "nc 127.0.0.1 8080 </dev/null | grep hello"}}},
			PeriodSeconds: 1,
		}
		talker := sh("talker", `trap "exit 0" TERM; while read l; do echo got:$l; done; sleep 3600 & wait`)
		talker.Stdin = true
		pod := createPod(t, ctx, newPod("two", handler, server, client, talker))
		waitPod(t, ctx, pod.Name, "Ready", ready)

		// exec without a tty, and with stdin.
		var out string
		var err error
		for i := 0; i < 10; i++ { // the server listens again a moment after each answer
			if out, err = c.kubectl(ctx, nil, "exec", pod.Name, "-c", "client", "--", "sh", "-c", "nc 127.0.0.1 8080 </dev/null; [ -t 1 ] || echo no-tty"); err == nil && strings.Contains(out, "hello") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil || out != "hello\nno-tty\n" {
			t.Errorf("kubectl exec: %v: %q, want hello and no tty", err, out)
		}
		if out, err := c.kubectl(ctx, strings.NewReader("through stdin\n"), "exec", "-i", pod.Name, "-c", "client", "--", "cat"); err != nil || out != "through stdin\n" {
			t.Errorf("kubectl exec -i: %v: %q", err, out)
		}
		// exec with a tty: kubectl asks for one only when its stdin is a terminal.
		if out, err := c.kubectlTTY(ctx, "exec", "-it", pod.Name, "-c", "client", "--", "sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo is-a-tty; tty"); err != nil ||
			!strings.Contains(out, "is-a-tty") || !strings.Contains(out, "/dev/pts/") {
			t.Errorf("kubectl exec -it: %v: %q", err, out)
		}

		if out, err := c.kubectl(ctx, nil, "logs", pod.Name, "-c", "client"); err != nil || out != "client started\n" {
			t.Errorf("kubectl logs: %v: %q", err, out)
		}

		// attach: a line written to the container's stdin comes back on its stdout.
		if out, err := c.attach(ctx, pod.Name, "talker", "ping\n", "got:ping"); err != nil {
			t.Errorf("kubectl attach: %v: %q", err, out)
		}
	})
}

// kubectlTTY runs kubectl with a pseudo-terminal as its stdin, stdout and
// stderr, and returns what it wrote there.
func (c *cluster) kubectlTTY(ctx context.Context, args ...string) (string, error) {
	pty, slavePath, err := console.NewPty()
	if err != nil {
		return "", err
	}
	defer pty.Close()
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "kubectl", append([]string{"--kubeconfig", c.kubeconfig}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	if err := cmd.Start(); err != nil {
		slave.Close()
		return "", err
	}
	slave.Close()
	out := make(chan []byte)
	go func() {
		// Once kubectl exits, reading the master ends with EIO.
		data, _ := io.ReadAll(pty)
		out <- data
	}()
	err = cmd.Wait()
	return string(<-out), err
}

// attach runs `kubectl attach -i` on a container, writes input and waits
// until want comes back, then ends kubectl (by its pid).
func (c *cluster) attach(ctx context.Context, pod, container, input, want string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, patience(30*time.Second))
	defer cancel()
	cmd := exec.CommandContext(ctx, "kubectl", "--kubeconfig", c.kubeconfig, "attach", "-i", pod, "-c", container)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// kubectl sends stdin only once the session is up: resend until answered.
	go func() {
		for ctx.Err() == nil {
			if _, err := io.WriteString(stdin, input); err != nil {
				return
			}
			time.Sleep(time.Second)
		}
	}()
	var seen strings.Builder
	s := bufio.NewScanner(stdout)
	for s.Scan() {
		seen.WriteString(s.Text() + "\n")
		if strings.Contains(s.Text(), want) {
			return seen.String(), nil
		}
	}
	return seen.String(), fmt.Errorf("no %q before kubectl ended (%v)", want, ctx.Err())
}

// exec runs a command in a container through the API server.
func (c *cluster) exec(ctx context.Context, pod, container string, cmd ...string) (string, error) {
	return c.kubectl(ctx, nil, append([]string{"exec", pod, "-c", container, "--"}, cmd...)...)
}
