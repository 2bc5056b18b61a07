import type { Relation } from '../compile/node.js';
import type { Dialect } from '../warehouse/dialect.js';
import type { Session } from '../warehouse/warehouse.js';
import { computeComponents, type ComponentsStats } from './connected-components.js';

/**
 * Runs the statements of one identity step on one session: times each statement (target/run
 * shows where the time went), names and tracks scratch tables beside `home`, and drops them.
 */
export class StepRunner {
  readonly executed: string[] = [];
  readonly components: ComponentsStats[] = [];
  private readonly temporary = new Set<Relation>();

  constructor(
    readonly session: Session,
    readonly d: Dialect,
    /** Scratch tables go to this relation's schema. */
    readonly home: Relation,
  ) {}

  async run(sql: string) {
    const started = performance.now();
    const result = await this.session.execute(sql);
    this.executed.push(`-- ${seconds(started)}s\n${sql}`);
    return result;
  }

  /** Runs statements that begin with BEGIN TRANSACTION as one; rolls back if one fails. */
  async runAll(statements: string[]): Promise<void> {
    try {
      for (const sql of statements) await this.run(sql);
    } catch (error) {
      if (statements[0] === 'BEGIN TRANSACTION') await this.session.execute('ROLLBACK').catch(() => undefined);
      throw error;
    }
  }

  async create(relation: Relation, sql: string) {
    this.temporary.add(relation);
    return this.run(this.d.createTableAs(relation, sql));
  }

  async count(relation: Relation): Promise<number> {
    const [row] = await this.session.query(`SELECT COUNT(*) AS ${this.d.quoteIdentifier('n')} FROM ${this.d.quoteRelation(relation)}`);
    return Number(row?.['n'] ?? 0);
  }

  scratch(name: string): Relation {
    const relation = { ...this.home, name: `__cdp_idg_${name}` };
    this.temporary.add(relation);
    return relation;
  }

  /** Components of `nodes` over `edges` into `output`. */
  async computeComponents(nodes: Relation, edges: Relation, output: Relation): Promise<void> {
    const started = performance.now();
    this.temporary.add(output);
    const stats = await computeComponents(this.session, this.d, { nodes, edges, output, scratchSchema: this.home.schema, database: this.home.database });
    this.components.push(stats);
    this.executed.push(`-- ${seconds(started)}s: connected components of ${this.d.quoteRelation(edges)}, ${stats.rounds} rounds, ${stats.jumps} jumps, ${stats.statements} statements`);
  }

  async dropScratch(): Promise<void> {
    for (const relation of this.temporary) await this.session.execute(this.d.dropRelation(relation, 'table')).catch(() => undefined);
  }
}

function seconds(started: number): string {
  return ((performance.now() - started) / 1000).toFixed(2);
}
