/*
 * A JNI library with native allocation sites the tests know by name, for the native call sites
 * tests. Built by the test with cc (tests/harness.py, leaky_library):
 *
 *   leak_into_cache  mallocs, touches and keeps each block: the leak, counted here exactly
 *   churn_buffers    mallocs and frees at once: allocation traffic that leaves nothing live
 *
 * Both are exported and never inlined, so their names are in .dynsym and .symtab and each is
 * the caller of malloc. Java_NativeLeak_mallocSlot reads the entry of this library's GOT that
 * its calls to malloc go through, so a test sees the interposition come and go; the address
 * malloc resolves to without any interposition is Java_NativeLeak_realMalloc's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <jni.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEPT (1 << 20)

static void *kept[MAX_KEPT];
static size_t kept_count;
static jlong kept_bytes;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
/* Read from each churned block, so the compiler cannot drop the malloc and free as dead code. */
static volatile unsigned char churn_sink;

/* Keeps one touched block of `size` bytes; returns the bytes kept in all (unchanged when full). */
__attribute__((noinline, visibility("default"))) jlong leak_into_cache(size_t size) {
    void *p = malloc(size);
    jlong total;
    if (p == NULL) {
        return -1;
    }
    /* Touched: the pages are resident, as a real cache's are. */
    memset(p, 0xa5, size);
    pthread_mutex_lock(&kept_lock);
    if (kept_count < MAX_KEPT) {
        kept[kept_count++] = p;
        kept_bytes += (jlong) size;
        p = NULL;
    }
    total = kept_bytes;
    pthread_mutex_unlock(&kept_lock);
    free(p);
    return total;
}

/* Mallocs `count` blocks of `size` bytes, touches them and frees them all; returns the bytes. */
__attribute__((noinline, visibility("default"))) jlong churn_buffers(int count, size_t size) {
    void *blocks[64];
    jlong done = 0;
    int i;
    if (count > 64) {
        count = 64;
    }
    for (i = 0; i < count; i++) {
        blocks[i] = malloc(size + (size_t) i * 16);
        if (blocks[i] != NULL) {
            memset(blocks[i], i, size);
            done += (jlong) size;
        }
    }
    for (i = 0; i < count; i++) {
        if (blocks[i] != NULL) {
            churn_sink ^= ((volatile unsigned char *) blocks[i])[size - 1];
        }
        free(blocks[i]);
    }
    return done;
}

JNIEXPORT jlong JNICALL Java_NativeLeak_leak(JNIEnv *env, jclass cls, jint count, jint size) {
    jlong total = 0;
    jint i;
    (void) env;
    (void) cls;
    if (count < 0 || size <= 0) {
        return -1;
    }
    for (i = 0; i < count; i++) {
        total = leak_into_cache((size_t) size);
        if (total < 0) {
            return -1;
        }
    }
    pthread_mutex_lock(&kept_lock);
    total = kept_bytes;
    pthread_mutex_unlock(&kept_lock);
    return total;
}

JNIEXPORT jlong JNICALL Java_NativeLeak_churn(JNIEnv *env, jclass cls, jint rounds, jint size) {
    jlong total = 0;
    jint i;
    (void) env;
    (void) cls;
    if (rounds < 0 || size <= 0) {
        return -1;
    }
    for (i = 0; i < rounds; i++) {
        total += churn_buffers(16, (size_t) size);
    }
    return total;
}

/* Frees every kept block; returns the bytes freed. */
JNIEXPORT jlong JNICALL Java_NativeLeak_releaseAll(JNIEnv *env, jclass cls) {
    jlong freed;
    size_t i;
    (void) env;
    (void) cls;
    pthread_mutex_lock(&kept_lock);
    for (i = 0; i < kept_count; i++) {
        free(kept[i]);
        kept[i] = NULL;
    }
    kept_count = 0;
    freed = kept_bytes;
    kept_bytes = 0;
    pthread_mutex_unlock(&kept_lock);
    return freed;
}

/* A dynamic entry's address: glibc adjusts some entries by the load bias in place, others not. */
static uintptr_t dyn_address(uintptr_t base, uintptr_t value) {
    return value < base ? base + value : value;
}

struct slot_search {
    uintptr_t self;
    uintptr_t found;
};

/* The GOT entry of "malloc" in the object that holds search->self: the PLT's, else the GOT's. */
static int find_malloc_slot(struct dl_phdr_info *info, size_t size, void *data) {
    struct slot_search *search = data;
    const ElfW(Dyn) *dyn = NULL;
    uintptr_t base = info->dlpi_addr;
    uintptr_t symtab = 0, strtab = 0, jmprel = 0, rela = 0;
    size_t jmprel_size = 0, rela_size = 0, rela_ent = sizeof(ElfW(Rela));
    int mine = 0;
    int i;
    (void) size;
    for (i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = base + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && search->self >= start && search->self < start + ph->p_memsz) {
            mine = 1;
        }
        if (ph->p_type == PT_DYNAMIC) {
            dyn = (const ElfW(Dyn) *) (base + ph->p_vaddr);
        }
    }
    if (!mine || dyn == NULL) {
        return 0;
    }
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB: symtab = dyn_address(base, dyn->d_un.d_ptr); break;
        case DT_STRTAB: strtab = dyn_address(base, dyn->d_un.d_ptr); break;
        case DT_JMPREL: jmprel = dyn_address(base, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: jmprel_size = dyn->d_un.d_val; break;
        case DT_RELA: rela = dyn_address(base, dyn->d_un.d_ptr); break;
        case DT_RELASZ: rela_size = dyn->d_un.d_val; break;
        case DT_RELAENT: rela_ent = dyn->d_un.d_val; break;
        default: break;
        }
    }
    if (symtab == 0 || strtab == 0) {
        return 1;
    }
    {
        const uintptr_t tables[2] = {jmprel, rela};
        const size_t sizes[2] = {jmprel_size, rela_size};
        int t;
        for (t = 0; t < 2 && search->found == 0; t++) {
            size_t n;
            if (tables[t] == 0 || rela_ent == 0) {
                continue;
            }
            for (n = 0; n < sizes[t] / rela_ent; n++) {
                const ElfW(Rela) *r = (const ElfW(Rela) *) (tables[t] + n * rela_ent);
                const ElfW(Sym) *sym = (const ElfW(Sym) *) symtab + ELF64_R_SYM(r->r_info);
                unsigned type = ELF64_R_TYPE(r->r_info);
                if ((type == R_X86_64_JUMP_SLOT || type == R_X86_64_GLOB_DAT)
                        && strcmp((const char *) strtab + sym->st_name, "malloc") == 0) {
                    search->found = base + r->r_offset;
                    break;
                }
            }
        }
    }
    return 1;
}

/* What this library's calls to malloc jump to now: the content of its GOT entry for malloc. */
JNIEXPORT jlong JNICALL Java_NativeLeak_mallocSlot(JNIEnv *env, jclass cls) {
    struct slot_search search;
    (void) env;
    (void) cls;
    /* A call first, so a lazily bound entry holds malloc's address rather than the PLT's (a
       malloc freed at once here could be dropped by the compiler; churn_buffers' is not). */
    churn_buffers(1, 16);
    search.self = (uintptr_t) &leak_into_cache;
    search.found = 0;
    dl_iterate_phdr(find_malloc_slot, &search);
    if (search.found == 0) {
        return 0;
    }
    return (jlong) *(volatile uintptr_t *) search.found;
}

/* The address the dynamic linker resolves malloc to for everyone. */
JNIEXPORT jlong JNICALL Java_NativeLeak_realMalloc(JNIEnv *env, jclass cls) {
    (void) env;
    (void) cls;
    return (jlong) (uintptr_t) dlsym(RTLD_DEFAULT, "malloc");
}
