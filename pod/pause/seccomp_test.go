package pause

import (
	bo "encoding/binary"
	"io"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

// What seccomp(2) filters return (linux/seccomp.h) and the architectures
// they see (linux/audit.h).
const (
	retKillProcess = 0x80000000
	retAllow       = 0x7fff0000
	archX86_64     = 0xc000003e
	archAarch64    = 0xc00000b7
	archI386       = 0x40000003
	archArm        = 0x40000028
	x32Bit         = 0x40000000
)

// syscallArch is what a filter must allow on one architecture, by its own
// system call numbers (from the kernel's tables, not from the C headers the
// filter is built with).
type syscallArch struct {
	goarch, cc string
	audit      uint32
	// task: the pause task once ready; waiter: the -U parent.
	task, waiter map[string]uint32
}

var filterArchs = []syscallArch{
	{
		goarch: "amd64", audit: archX86_64,
		task: map[string]uint32{"write": 1, "close": 3, "wait4": 61, "rt_sigtimedwait": 128,
			"restart_syscall": 219, "exit_group": 231},
		waiter: map[string]uint32{"close": 3, "wait4": 61, "exit_group": 231},
	},
	{
		goarch: "arm64", audit: archAarch64,
		task: map[string]uint32{"close": 57, "write": 64, "exit_group": 94, "restart_syscall": 128,
			"rt_sigtimedwait": 137, "wait4": 260},
		waiter: map[string]uint32{"close": 57, "exit_group": 94, "wait4": 260},
	},
}

// statusOf reads one field of /proc/PID/status.
func statusOf(t *testing.T, pid int, field string) string {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestPauseTaskRunsUnderSeccomp: the release binary's pause task, and with
// -U its parent too, run under a seccomp filter.
func TestPauseTaskRunsUnderSeccomp(t *testing.T) {
	c := rootConfig(t)
	p, err := Start(c)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, p)
	if got := statusOf(t, p.Pid, "Seccomp"); got != "2" {
		t.Errorf("pause task: Seccomp: %s, want 2 (filter)", got)
	}

	u, err := Start(joinsUsernsConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, u)
	for _, pid := range u.Pids {
		if got := statusOf(t, pid, "Seccomp"); got != "2" {
			t.Errorf("-U pause task, pid %d of %v: Seccomp: %s, want 2 (filter)", pid, u.Pids, got)
		}
	}
	// Still working under it: SIGTERM ends it with 0.
	if err := u.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-u.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the -U pause task did not exit on SIGTERM")
	}
	if code, _ := u.Exit(); code != 0 {
		t.Errorf("-U pause task: exit status %d on SIGTERM, want 0", code)
	}
}

// TestSeccompKillsACallOutsideTheList: a build that makes one call outside
// the filter once it is installed dies of SIGSYS, before reporting ready.
func TestSeccompKillsACallOutsideTheList(t *testing.T) {
	rootConfig(t)
	bin := buildVariant(t, "gcc", "-DPAUSE_TEST_FORBIDDEN_CALL")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := &exec.Cmd{
		Path: bin, Args: []string{"pause"},
		Dir:        t.TempDir(), // where a core dump would go
		ExtraFiles: []*os.File{w},
	}
	exit, err := fork(cmd)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	// It closes the pipe when it reports ready, or dies.
	_ = r.SetReadDeadline(time.Now().Add(readyTimeout))
	report, _ := io.ReadAll(r)
	var status int
	select {
	case status = <-exit:
	case <-time.After(readyTimeout):
		_ = cmd.Process.Kill() // not reaped yet: the pid is still its own
		t.Fatalf("the pause task lives on after a call outside the filter; report %q", report)
	}
	_ = cmd.Wait()
	if want := 128 + int(syscall.SIGSYS); status != want {
		t.Errorf("exit status %d after a call outside the filter, want %d (SIGSYS); report %q", status, want, report)
	}
	if strings.Contains(string(report), "ok") {
		t.Errorf("reported ready (%q) after a call outside the filter", report)
	}
}

// runner returns how to run a binary built for goarch: natively, or under
// qemu user emulation.
func runner(t *testing.T, goarch string) []string {
	t.Helper()
	if goarch == runtime.GOARCH {
		return nil
	}
	qemu := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch]
	for _, name := range []string{"qemu-" + qemu + "-static", "qemu-" + qemu} {
		if path, err := exec.LookPath(name); err == nil {
			return []string{path}
		}
	}
	t.Skipf("needs qemu-%s-static to run a %s build (Debian package qemu-user-static; hack/deps.sh installs it)", qemu, goarch)
	return nil
}

// compiler is the C compiler for goarch: gcc, or Debian's cross compiler.
func compiler(goarch string) string {
	if goarch == runtime.GOARCH {
		return "gcc"
	}
	return map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[goarch] + "-linux-gnu-gcc"
}

// dumpedFilters builds c/pause.c for goarch with its filters dumped and
// returns them: the pause task's, then the -U parent's.
func dumpedFilters(t *testing.T, goarch string) (task, waiter *bpf.VM) {
	t.Helper()
	bin := buildVariant(t, compiler(goarch), "-DPAUSE_TEST_DUMP_FILTERS")
	argv := append(runner(t, goarch), bin)
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	var vms []*bpf.VM
	for len(out) >= 4 && len(vms) < 2 {
		n := int(bo.LittleEndian.Uint32(out))
		out = out[4:]
		if len(out) < 8*n {
			break
		}
		raw := make([]bpf.RawInstruction, n)
		for i := range raw {
			ins := out[8*i:]
			raw[i] = bpf.RawInstruction{Op: bo.LittleEndian.Uint16(ins), Jt: ins[2], Jf: ins[3], K: bo.LittleEndian.Uint32(ins[4:])}
		}
		out = out[8*n:]
		prog, ok := bpf.Disassemble(raw)
		if !ok {
			t.Fatalf("%s filter %d: instructions outside classic BPF: %v", goarch, len(vms), prog)
		}
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatalf("%s filter %d: %v", goarch, len(vms), err)
		}
		vms = append(vms, vm)
	}
	if len(vms) != 2 || len(out) != 0 {
		t.Fatalf("%s: %d filters and %d bytes left in the dump, want 2 and none", goarch, len(vms), len(out))
	}
	return vms[0], vms[1]
}

// verdict runs a filter on a system call as the kernel hands it over
// (struct seccomp_data: nr, arch; the VM loads words big-endian, so they
// are laid out so).
func verdict(t *testing.T, vm *bpf.VM, arch, nr uint32) uint32 {
	t.Helper()
	data := make([]byte, 64)
	bo.BigEndian.PutUint32(data[0:], nr)
	bo.BigEndian.PutUint32(data[4:], arch)
	ret, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(ret)
}

// TestSeccompFiltersPerArchitecture: on x86_64 and aarch64, by each one's
// system call numbers, the filters allow exactly their lists and kill on
// every other call, on another architecture's calls and on x86_64's x32
// calls.
func TestSeccompFiltersPerArchitecture(t *testing.T) {
	for _, arch := range filterArchs {
		t.Run(arch.goarch, func(t *testing.T) {
			task, waiter := dumpedFilters(t, arch.goarch)
			for _, f := range []struct {
				name    string
				vm      *bpf.VM
				allowed map[string]uint32
			}{{"pause task", task, arch.task}, {"-U parent", waiter, arch.waiter}} {
				allowed := map[uint32]string{}
				for name, nr := range f.allowed {
					allowed[nr] = name
				}
				for nr := uint32(0); nr < 1024; nr++ {
					want, what := uint32(retKillProcess), "killed"
					if name, ok := allowed[nr]; ok {
						want, what = retAllow, "allowed ("+name+")"
					}
					if got := verdict(t, f.vm, arch.audit, nr); got != want {
						t.Errorf("%s filter: call %d: %#x, want it %s", f.name, nr, got, what)
					}
				}
				if verdict(t, f.vm, arch.audit, ^uint32(0)) != retKillProcess {
					t.Errorf("%s filter: call -1 is not killed", f.name)
				}
				for _, name := range slices.Sorted(maps.Keys(f.allowed)) {
					nr := f.allowed[name]
					for _, other := range []uint32{archX86_64, archAarch64, archI386, archArm} {
						if other != arch.audit && verdict(t, f.vm, other, nr) != retKillProcess {
							t.Errorf("%s filter: %s (%d) of architecture %#x is not killed", f.name, name, nr, other)
						}
					}
					if verdict(t, f.vm, arch.audit, nr|x32Bit) != retKillProcess {
						t.Errorf("%s filter: %s (%d) with the x32 bit is not killed", f.name, name, nr)
					}
				}
			}
		})
	}
}
