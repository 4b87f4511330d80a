/* SPDX-License-Identifier: BSD-2-Clause
 *
 * shm-segment.c - creates a System V shared memory segment, as another
 * program (or another user, under setpriv) would before vmclockd starts.
 *
 *   shm-segment KEY SIZE MODE   creates it (never over an existing one) and
 *                               prints its id
 *
 * KEY and MODE in C notation (0x4e545032, 0666).  The segment outlives the
 * program: remove it with ipcrm -M KEY.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(int argc, char **argv)
{
	unsigned long key, size, mode;
	char *end;
	int id;

	if (argc != 4) {
		fprintf(stderr, "usage: shm-segment KEY SIZE MODE\n");
		return 2;
	}
	key = strtoul(argv[1], &end, 0);
	if (*end)
		return 2;
	size = strtoul(argv[2], &end, 0);
	if (*end)
		return 2;
	mode = strtoul(argv[3], &end, 0);
	if (*end || mode > 0777)
		return 2;
	id = shmget((key_t)key, size, IPC_CREAT | IPC_EXCL | (int)mode);
	if (id < 0) {
		fprintf(stderr, "shm-segment: shmget 0x%08lx: %s\n", key, strerror(errno));
		return 1;
	}
	printf("%d\n", id);
	return 0;
}
