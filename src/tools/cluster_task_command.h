// `cloudmerge cluster-task STEP ...`: the hidden subcommand that Spark tasks
// (spark/merge_job.py) run, one process per task, so that every row of a
// cluster merge is tokenized, typed, joined and written by this engine
// (cloudmerge/engine/split_tasks.h) while Spark schedules, shuffles the blobs
// and retries. Steps:
//   plan X Y [--x-key K] [--y-key K] [--allow-numeric-header]
//        (driver) headers, key columns, output header, sizes, whether each input can be
//        split (read at any offset) and its version (S3 ETag; local inode, size, mtime)
//        that every split scan must find again: one JSON line
//   scan FILE --key K [--allow-numeric-header] [--drop-key] [--partitions P]
//        [--hash-mode M] [--split START END --size N --body B --version V] [--piece-bytes N]
//        one split (or the whole file): frames out as the records are made, tag p
//        partition p's records (frames of ~--piece-bytes, 8 MiB; a partition's frames in file
//        order), and last, tag 0xffffffff the summary (u64 rows, u64 end position,
//        u8 quote seen, KeyScan)
//   combine   frames of KeyScans in file order in; "MODE LOSSY VALUES" out
//   join --x-mode M --y-mode M [--no-y-values] [--ranges R --x-end N]
//        frames in (tag 0 x records, tag 1 y records, each in order; or tag 0xfffffffe, a
//        blob labelled by the job: u32 side, u32 split, u32 piece, then the records, in
//        any order: put in (side, split, piece) order);
//        frames out (tag r: range r's matches)
//   write OUT [--header TEXT]   match frames in; OUT written atomically; lines out
// Bad input exits 3 with file, line and column, bad options 2, I/O 4. The
// protocol is internal: both ends are the same binary and the job script.
// Threading: single-threaded, one process per task.
#pragma once

namespace cloudmerge_cli {

int RunClusterTask(int argc, char** argv);

}  // namespace cloudmerge_cli
