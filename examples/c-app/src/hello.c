/*
 * mkimg example: a C program linked against glibc that uses NSS (the
 * image's /etc/passwd and /etc/group) and reads the CA bundle mkimg builds
 * from the ca-certificates package.
 *
 *   hello            print who we are and how many CA certificates we trust
 *   hello --check    the same, exit 1 unless the bundle has at least 100
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define BUNDLE "/etc/ssl/certs/ca-certificates.crt"

int main(int argc, char **argv) {
    int check = argc > 1 && strcmp(argv[1], "--check") == 0;
    struct passwd *pw = getpwuid(getuid());
    struct group *gr = getgrgid(getgid());
    if (pw == NULL || gr == NULL) {
        fprintf(stderr, "hello: uid %d or gid %d has no entry in /etc/passwd or /etc/group\n", (int)getuid(), (int)getgid());
        return 1;
    }
    FILE *f = fopen(BUNDLE, "r");
    if (f == NULL) {
        perror("hello: " BUNDLE);
        return 1;
    }
    char line[4096];
    int certs = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0) certs++;
    fclose(f);
    printf("hello from %s (uid %d, group %s, home %s); %d CA certificates trusted\n", pw->pw_name, (int)pw->pw_uid, gr->gr_name, pw->pw_dir, certs);
    if (check && certs < 100) {
        fprintf(stderr, "hello: only %d certificates in %s\n", certs, BUNDLE);
        return 1;
    }
    return 0;
}
