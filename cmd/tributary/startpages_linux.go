package main

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// dropStartupPages takes the read-only pages of the tributary binary out of
// the process's memory map once the server has started; they stay in the
// page cache, and what runs later maps again the pages it touches.
//
// Starting touches functions and their metadata all over the binary, and
// the kernel maps the pages around each one it faults in (fault-around, 64
// KiB): an idle server had 28–39 MiB of its binary resident, 12 MiB of them
// the function table (runtime.pclntab, 14 MiB), of which an idle server
// needs a few pages. Only mappings that are not writable are dropped: their
// pages are the file's, and MADV_DONTNEED loses nothing of them.
func dropStartupPages() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode path
		f := bytes.Fields(sc.Bytes())
		if len(f) < 6 || string(f[5]) != exe || len(f[1]) < 2 || f[1][1] != '-' {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
